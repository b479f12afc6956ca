"""A registry's ``index.json``, and which of its packs suits this host.

The index is all a puller reads before choosing, so it says enough to pick a
pack without downloading any; whatever it says is checked again against the
pack's own manifest after download (see ``pull``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from alexnet_tvm.errors import RegistryError
from alexnet_tvm.schemas import check_index_entry
from alexnet_tvm.runtime.compat import ARCH, CPU, CUDA, KIND, TVM, HostInfo, mismatch

from .archive import check_member_name, utc_now

INDEX_FORMAT = 1
INDEX = "index.json"
PACKS_DIR = "packs"


@dataclass
class PackEntry:
    """One pack as the index lists it: enough to pick a pack without downloading any."""

    model: str
    target: str
    batch: int
    tvm_version: str
    digest: str
    size: int
    created: str
    file: str
    kind: str = "llvm"
    host_features: list[str] = field(default_factory=list)
    tvm_target: str = ""
    verify: dict | None = None
    #: when the registry added the pack (its own clock): what "newest" means when choosing
    published: str | None = None
    #: the key id that signed the pack's SHA256SUMS (``None``: unsigned)
    signer: str | None = None

    @classmethod
    def from_dict(cls, d: object, where: str) -> "PackEntry":
        check_index_entry(d, where, RegistryError)
        check_member_name(d["file"], where)
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        return asdict(self)

    def label(self) -> str:
        return f"{self.model} {self.target} b{self.batch} (TVM {self.tvm_version}, {self.digest[7:19]})"

    def target_dict(self) -> dict:
        """The entry's target in the manifest's form, for the compatibility rule."""
        return {"name": self.target, "kind": self.kind, "host_features": self.host_features,
                "tvm_target": self.tvm_target}

    def pack_file_name(self) -> str:
        """Where a registry keeps this pack: readable, and unique per content."""
        return f"{PACKS_DIR}/{self.model}-{self.target}-b{self.batch}-{self.digest[7:19]}.tar.gz"


@dataclass
class Index:
    """``index.json``: every published pack; invalid content is refused, never half-read."""

    packs: list[PackEntry] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | bytes, where: str) -> "Index":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RegistryError(f"{where}: corrupt index ({e})") from None
        if not isinstance(data, dict) or not isinstance(data.get("packs"), list):
            raise RegistryError(f"{where}: not a registry index (no 'packs' list)")
        if data.get("format", INDEX_FORMAT) != INDEX_FORMAT:
            raise RegistryError(f"{where}: index format {data.get('format')!r}, this tool reads {INDEX_FORMAT}")
        return cls([PackEntry.from_dict(p, f"{where}: packs[{i}]") for i, p in enumerate(data["packs"])])

    def to_dict(self) -> dict:
        return {"format": INDEX_FORMAT, "updated": utc_now(), "packs": [p.to_dict() for p in self.packs]}


def verify_summary(report: dict | None) -> dict | None:
    """The few numbers of a verify report that the index shows (``None``: never verified)."""
    if report is None:
        return None
    comp = report.get("labelled") or report.get("random") or {}
    return {"passed": bool(report.get("passed")), "against": report.get("against"),
            "images": comp.get("images"), "max_abs_error": comp.get("max_abs_error"),
            "top1_agreement": comp.get("top1_agreement"), "accuracy": comp.get("accuracy_tvm")}


def incompatibility(target: dict, tvm_version: str, host: HostInfo, requested: str | None) -> str | None:
    """Why a pack built for ``target`` (manifest form) cannot run here (``None``: it can).

    The rule is the runtime's (``runtime.compat.mismatch``), so a pulled pack also
    loads; only GPU packs differ: CPU flags say nothing about the GPU, so they are
    matched by name and taken only when asked for.
    """
    m = mismatch(target, tvm_version, host)
    if m is None:
        return None
    if m.rule == CUDA:
        return None if target.get("name") == requested else "a CUDA pack (ask for it with --target NAME)"
    messages = {
        TVM: f"built with TVM {tvm_version}, this runtime has TVM {m.detail}",
        KIND: f"target kind {m.detail!r} is not runnable by this runtime",
        ARCH: "cross-compiled for another CPU architecture",
        CPU: f"this CPU lacks {m.detail}",
    }
    return messages[m.rule]


@dataclass
class Selection:
    entry: PackEntry
    #: the pack's target is the one asked for (else: a compatible one)
    exact: bool
    #: packs of the model passed over, with the reason
    refused: list[str]


def _of_model(index: Index, model: str, batch: int | None, where: str) -> list[PackEntry]:
    """The packs of ``model`` (at ``batch`` when given), or a refusal naming what there is."""
    mine = [e for e in index.packs if e.model == model]
    if not mine:
        known = sorted({e.model for e in index.packs})
        raise RegistryError(f"{where} has no pack of model {model!r} (models: {', '.join(known) or 'none'})")
    if batch is not None:
        sized = [e for e in mine if e.batch == batch]
        if not sized:
            raise RegistryError(f"{where} has no pack of {model} at batch {batch} "
                                f"(batches: {', '.join(map(str, sorted({e.batch for e in mine})))})")
        mine = sized
    return mine


def select_pack(index: Index, model: str, target: str | None, batch: int | None, host: HostInfo,
                where: str = "registry") -> Selection:
    """The best pack of ``model`` for this host: the exact target first, then any compatible one.

    Among equals, the most specific target (most CPU features, i.e. the fastest
    code this CPU runs), then the requested or smallest batch, then the most recently
    published (the registry's clock: a pack's own ``created`` is a claim, not a fact).
    """
    ok, refused = [], []
    for e in _of_model(index, model, batch, where):
        why = incompatibility(e.target_dict(), e.tvm_version, host, target)
        (refused.append(f"{e.target} b{e.batch}: {why}") if why else ok.append(e))
    if not ok:
        raise RegistryError(f"no pack of {model} in {where} runs here: {'; '.join(sorted(set(refused)))}")
    # index order breaks ties within one second: publishing appends
    _, best = max(enumerate(ok), key=lambda ie: (ie[1].target == target, len(ie[1].host_features), -ie[1].batch,
                                                 ie[1].published or "", ie[0]))
    return Selection(best, best.target == target, refused)
