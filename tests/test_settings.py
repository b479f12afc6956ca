"""settings: which targets.yaml and tuning_logs/ a command uses, in the documented order."""

from __future__ import annotations

from pathlib import Path

import pytest

from alexnet_tvm import settings, target_choice

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ("database_workload.json", "database_tuning_record.json")
#: a record set (tuning_logs/<target>/<cpu>/) as the wheel ships it
SHIPPED_SET = "znver4"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current folder, no ALEXNET_TVM_HOME."""
    monkeypatch.delenv(settings.HOME_ENV, raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.fixture
def wheel_only(elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """As installed from a wheel: no checkout, a shipped data folder; returns that folder."""
    data = tmp_path / "site" / "alexnet_tvm" / "data"
    (data / "tuning_logs" / "x86-avx2" / SHIPPED_SET).mkdir(parents=True)
    (data / settings.TARGETS_FILE).write_text("targets: {}\n")
    for name in RECORDS:
        (data / "tuning_logs" / "x86-avx2" / SHIPPED_SET / name).write_text(f"{name}\n")
    monkeypatch.setattr(settings, "_checkout", lambda: None)
    monkeypatch.setattr(settings, "packaged_data", lambda: data)
    return data


def _project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / settings.TARGETS_FILE).write_text("targets: {}\n")
    return folder


def test_the_checkout_is_the_default_in_a_development_install(elsewhere: Path) -> None:
    home = settings.data_home()
    assert (home.source, home.root) == ("checkout", ROOT)
    assert settings.targets_file_path() == ROOT / "targets.yaml"
    assert settings.logs_dir_for_reading(target="x86-avx2") == ROOT / "tuning_logs"
    assert settings.logs_dir_for_writing(target="x86-avx2") == ROOT / "tuning_logs"


def test_a_project_folder_beats_the_checkout_and_home_beats_both(elsewhere: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _project(elsewhere)
    assert settings.data_home().source == "cwd"
    assert settings.logs_dir_for_writing(target="x86-avx2") == elsewhere / "tuning_logs"
    home = tmp_path / "home"
    monkeypatch.setenv(settings.HOME_ENV, str(home))
    assert settings.targets_file_path() == home / "targets.yaml"
    assert settings.logs_dir_for_reading() == home / "tuning_logs"


def test_explicit_paths_win(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.HOME_ENV, str(elsewhere / "home"))
    assert settings.targets_file_path(Path("t.yaml")) == Path("t.yaml")
    assert settings.logs_dir_for_reading(Path("logs"), "x86-avx2") == Path("logs")
    assert settings.logs_dir_for_writing(Path("logs"), "x86-avx2") == Path("logs")
    assert not (elsewhere / "home").exists()


def test_wheel_data_is_read_but_never_written(wheel_only: Path, elsewhere: Path) -> None:
    assert settings.data_home().source == "package"
    assert settings.targets_file_path() == wheel_only / "targets.yaml"
    assert settings.logs_dir_for_reading(target="x86-avx2") == wheel_only / "tuning_logs"
    local = settings.logs_dir_for_writing(target="x86-avx2")
    assert local == elsewhere / "tuning_logs"
    for name in RECORDS:  # the user's copy starts from every shipped record set, so tune resumes from them
        assert (local / "x86-avx2" / SHIPPED_SET / name).read_text() == f"{name}\n"
    (local / "x86-avx2" / SHIPPED_SET / RECORDS[1]).write_text("tuned here\n")
    settings.logs_dir_for_writing(target="x86-avx2")  # a second run keeps what the first wrote
    assert (local / "x86-avx2" / SHIPPED_SET / RECORDS[1]).read_text() == "tuned here\n"
    assert settings.logs_dir_for_reading(target="x86-avx2") == local
    assert settings.logs_dir_for_reading(target="x86-avx512") == wheel_only / "tuning_logs"
    assert settings.logs_dir_for_writing(target="x86-avx512") == local  # nothing shipped to start from
    assert not (local / "x86-avx512").exists()


def test_resolve_target_and_the_artifact_folder(elsewhere: Path) -> None:
    assert target_choice.resolve_target("x86-avx2").name == "x86-avx2"
    assert settings.default_artifact_dir("model", "x86-avx2", 16) == Path("artifacts/model-x86-avx2-b16")
    assert settings.default_artifact_dir("model", "x86-avx2", 1, "bf16") == Path("artifacts/model-x86-avx2-b1-bf16")
