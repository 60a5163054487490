"""Unit tests for pytest_dtf_errors.hardware: detection, overrides, visibility, pinning.

Hermetic: every test passes its own environ (PATH pointing at a tmp dir with a
fake ``nvidia-smi``), proc_root and dev_root, so the machine running the tests
(GPU or not) does not matter.
"""

import ast
import importlib.util
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

try:
    from pytest_dtf_errors import hardware
except ImportError:  # package not installed (yet): the module is self-contained, load the file
    _spec = importlib.util.spec_from_file_location(
        "pytest_dtf_errors.hardware",
        Path(__file__).resolve().parents[1] / "pytest_dtf_errors" / "hardware.py",
    )
    assert _spec is not None and _spec.loader is not None
    hardware = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(hardware)

count_gpus = hardware.count_gpus
detect_hardware = hardware.detect_hardware
gpu_slice = hardware.gpu_slice
matches = hardware.matches
parse_override = hardware.parse_override
parse_visible_devices = hardware.parse_visible_devices

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fake nvidia-smi is a sh script")

SRC_PATH = Path(hardware.__file__)

UUID0 = "GPU-11111111-aaaa-bbbb-cccc-000000000000"
UUID1 = "GPU-22222222-aaaa-bbbb-cccc-111111111111"
MIG0 = "MIG-33333333-aaaa-bbbb-cccc-222222222222"

CSV_TWO = f"0, NVIDIA H200, 143771, {UUID0}\n1, NVIDIA H200, 143771, {UUID1}\n"
LIST_TWO = (
    f"GPU 0: NVIDIA H200 (UUID: {UUID0})\n"
    f"  MIG 1g.18gb     Device  0: (UUID: {MIG0})\n"
    f"GPU 1: NVIDIA H200 (UUID: {UUID1})\n"
)


def make_smi(tmp_path: Path, csv: str = CSV_TWO, listing: str = LIST_TWO, *,
             csv_body: str | None = None, list_body: str | None = None) -> Path:
    """A fake nvidia-smi in tmp_path/bin: ``-L`` prints *listing*, otherwise *csv*."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (tmp_path / "csv.txt").write_text(csv)
    (tmp_path / "list.txt").write_text(listing)
    csv_body = csv_body or f'cat "{tmp_path / "csv.txt"}"'
    list_body = list_body or f'cat "{tmp_path / "list.txt"}"'
    script = bindir / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f"PATH={os.defpath}:/usr/local/bin; export PATH\n"  # environ's PATH is only bin/
        f'echo "$@" >> "{tmp_path / "calls.log"}"\n'
        'if [ "$1" = "-L" ]; then\n'
        f"{list_body}\n"
        "else\n"
        f"{csv_body}\n"
        "fi\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def env_for(tmp_path: Path, **extra: str) -> dict:
    env = {"PATH": str(tmp_path / "bin")}
    env.update(extra)
    return env


def make_proc(tmp_path: Path, gpus=((UUID0, "NVIDIA H200"), (UUID1, "NVIDIA H200"))) -> Path:
    root = tmp_path / "proc"
    for i, (uuid, model) in enumerate(gpus):
        d = root / "driver" / "nvidia" / "gpus" / f"0000:{i + 1:02x}:00.0"
        d.mkdir(parents=True)
        (d / "information").write_text(
            f"Model: \t\t {model}\nIRQ:   \t\t 42\nGPU UUID: \t {uuid}\n"
            f"Video BIOS: \t 96.00.74.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\n"
            f"Bus Location: \t 0000:{i + 1:02x}:00.0\nDevice Minor: \t {i}\n"
        )
    return root


def detect(tmp_path: Path, environ: dict | None = None, **kw):
    kw.setdefault("proc_root", str(tmp_path / "no-proc"))
    kw.setdefault("dev_root", str(tmp_path / "no-dev"))
    return detect_hardware(env_for(tmp_path) if environ is None else environ, **kw)


# --------------------------------------------------------------------------- nvidia-smi


def test_no_gpu_anywhere_is_cpu_only(tmp_path):
    info = detect(tmp_path)
    assert info["tags"] == ["cpu"]
    assert info["gpu_count"] == 0 and info["gpus"] == []
    assert info["source"]["cpu"] == "always"
    assert info["source"]["gpus"] == "none"
    assert isinstance(info["host"], str) and info["host"]
    assert json.loads(json.dumps(info)) == info


def test_csv_two_gpus_cvd_unset(tmp_path):
    make_smi(tmp_path)
    info = detect(tmp_path)
    assert info["tags"] == ["cpu", "cuda"]
    assert info["gpu_count"] == 2
    assert info["gpus"] == [
        {"index": 0, "name": "NVIDIA H200", "memory_mb": 143771, "uuid": UUID0},
        {"index": 1, "name": "NVIDIA H200", "memory_mb": 143771, "uuid": UUID1},
    ]
    assert info["source"]["gpus"] == "nvidia-smi --query-gpu"
    assert info["source"]["cuda"].startswith("nvidia-smi --query-gpu: 2 of 2")
    assert "errors" not in info["source"]
    # the csv query answered, so -L was not run
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls == ["--query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits"]
    assert json.loads(json.dumps(info)) == info


@pytest.mark.parametrize(
    "cvd, expected",
    [
        ("", []),
        ("-1", []),
        ("1", [1]),
        ("0,1", [0, 1]),
        ("1,0", [1, 0]),
        (" 1 , 0 ", [1, 0]),
        ("0,-1,1", [0]),  # CUDA stops at the first invalid entry
        ("7", []),
        ("0,7,1", [0]),
        ("1,1", [1]),
        ("abc", []),
        (UUID1, [1]),
        (f"{UUID1},0", [1, 0]),
        (UUID1[:12], [1]),  # a unique UUID prefix
        ("GPU-", []),
        ("GPU-deadbeef", []),
    ],
)
def test_cuda_visible_devices(tmp_path, cvd, expected):
    make_smi(tmp_path)
    info = detect(tmp_path, env_for(tmp_path, CUDA_VISIBLE_DEVICES=cvd))
    assert [g["index"] for g in info["gpus"]] == expected
    assert info["gpu_count"] == len(expected)
    assert ("cuda" in info["tags"]) == bool(expected)
    assert info["source"]["cuda_visible_devices"] == cvd
    assert info["source"]["physical_gpu_count"] == 2
    if not expected:
        assert "cuda_hidden" in info["source"]
        assert "cuda" not in info["source"]


@pytest.mark.parametrize("value", ["void", "none", "NONE"])
def test_nvidia_visible_devices_void(tmp_path, value):
    make_smi(tmp_path)
    info = detect(tmp_path, env_for(tmp_path, NVIDIA_VISIBLE_DEVICES=value))
    assert info["tags"] == ["cpu"] and info["gpu_count"] == 0
    assert "NVIDIA_VISIBLE_DEVICES" in info["source"]["cuda_hidden"]


def test_nvidia_visible_devices_all_keeps_gpus(tmp_path):
    make_smi(tmp_path)
    info = detect(tmp_path, env_for(tmp_path, NVIDIA_VISIBLE_DEVICES="all"))
    assert info["gpu_count"] == 2


def test_explicit_nvidia_smi_path(tmp_path):
    smi = make_smi(tmp_path)
    info = detect_hardware({"PATH": "/nonexistent"}, nvidia_smi=str(smi),
                           proc_root=str(tmp_path / "x"), dev_root=str(tmp_path / "x"))
    assert info["gpu_count"] == 2


def test_hanging_nvidia_smi_times_out_and_is_killed(tmp_path):
    pidfile = tmp_path / "child.pid"
    make_smi(tmp_path, csv_body=f'sleep 30 & echo $! > "{pidfile}"; wait')
    start = time.monotonic()
    info = detect(tmp_path, timeout=0.5)
    elapsed = time.monotonic() - start
    assert elapsed < 5
    assert info["tags"] == ["cpu"] and info["gpu_count"] == 0
    assert any("timeout" in e for e in info["source"]["errors"])
    # after a timeout -L is not tried (a hung driver would hang it too)
    assert (tmp_path / "calls.log").read_text().count("-L") == 0
    # the whole process group was killed, not just the shell
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if _is_zombie(pid):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the fake nvidia-smi's child still runs")


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_hanging_nvidia_smi_falls_back_to_proc(tmp_path):
    make_smi(tmp_path, csv_body="sleep 30")
    info = detect(tmp_path, proc_root=str(make_proc(tmp_path)), timeout=0.3)
    assert "cuda" in info["tags"] and info["gpu_count"] == 2
    assert info["source"]["gpus"] == "/proc/driver/nvidia/gpus"


def test_garbage_csv_falls_back_to_list(tmp_path):
    make_smi(tmp_path, csv="Failed to initialize NVML: garbage\n\x00\xff !!\n")
    info = detect(tmp_path)
    assert info["source"]["gpus"] == "nvidia-smi -L"
    assert info["gpus"] == [
        {"index": 0, "name": "NVIDIA H200", "memory_mb": None, "uuid": UUID0},
        {"index": 1, "name": "NVIDIA H200", "memory_mb": None, "uuid": UUID1},
    ]
    assert any("unparseable" in e for e in info["source"]["errors"])


def test_all_garbage_is_cpu_only(tmp_path):
    make_smi(tmp_path, csv="lorem ipsum\n", listing="dolor, sit, amet\n\n")
    info = detect(tmp_path)
    assert info["tags"] == ["cpu"] and info["gpu_count"] == 0
    assert len(info["source"]["errors"]) >= 2


def test_huge_output_is_bounded(tmp_path):
    make_smi(tmp_path, csv_body="yes 'x, y, z, w' | head -c 3000000",
             list_body="yes garbage | head -c 3000000")
    info = detect(tmp_path, timeout=5)
    assert info["tags"] == ["cpu"]
    assert any("bytes of output" in e for e in info["source"]["errors"])


def test_nvidia_smi_exit_1_falls_back_to_proc(tmp_path):
    make_smi(tmp_path, csv_body="echo 'NVIDIA-SMI has failed'; exit 1", list_body="exit 1")
    info = detect(tmp_path, proc_root=str(make_proc(tmp_path)))
    assert info["tags"] == ["cpu", "cuda"]
    assert info["source"]["gpus"] == "/proc/driver/nvidia/gpus"
    assert [g["uuid"] for g in info["gpus"]] == [UUID0, UUID1]
    assert any("exit status 1" in e for e in info["source"]["errors"])


def test_nvidia_smi_exit_1_without_proc_is_cpu(tmp_path):
    make_smi(tmp_path, csv_body="exit 1", list_body="exit 1")
    info = detect(tmp_path)
    assert info["tags"] == ["cpu"]


def test_nvidia_smi_not_executable(tmp_path):
    bad = tmp_path / "nvidia-smi"
    bad.write_text("not a program")
    info = detect(tmp_path, nvidia_smi=str(bad))
    assert info["tags"] == ["cpu"]
    assert any("PermissionError" in e or "OSError" in e for e in info["source"]["errors"])
    info = detect(tmp_path, nvidia_smi=str(tmp_path / "missing"))
    assert info["tags"] == ["cpu"]


def test_working_nvidia_smi_listing_none_is_authoritative(tmp_path):
    make_smi(tmp_path, csv="", listing="")
    info = detect(tmp_path, proc_root=str(make_proc(tmp_path)))
    assert info["tags"] == ["cpu"] and info["source"]["gpus"] == "nvidia-smi --query-gpu"


def test_memory_not_available(tmp_path):
    make_smi(tmp_path, csv=f"0, NVIDIA Grace Hopper, [N/A], {UUID0}\n")
    info = detect(tmp_path)
    assert info["gpus"] == [
        {"index": 0, "name": "NVIDIA Grace Hopper", "memory_mb": None, "uuid": UUID0}
    ]


def test_mig_uuid_in_cuda_visible_devices(tmp_path):
    make_smi(tmp_path)
    info = detect(tmp_path, env_for(tmp_path, CUDA_VISIBLE_DEVICES=MIG0))
    assert info["gpu_count"] == 1 and "cuda" in info["tags"]
    assert info["gpus"] == [
        {"index": 0, "name": "NVIDIA H200", "memory_mb": None, "uuid": MIG0, "mig": True}
    ]


def test_mixed_models_warn_about_cuda_device_order(tmp_path):
    make_smi(tmp_path, csv=f"0, NVIDIA A100, 40960, {UUID0}\n1, NVIDIA T4, 15360, {UUID1}\n")
    info = detect(tmp_path, env_for(tmp_path, CUDA_VISIBLE_DEVICES="1"))
    assert info["gpus"][0]["name"] == "NVIDIA T4"
    assert "CUDA_DEVICE_ORDER" in info["source"]["cuda_order_warning"]
    info = detect(tmp_path, env_for(tmp_path, CUDA_VISIBLE_DEVICES="1",
                                    CUDA_DEVICE_ORDER="PCI_BUS_ID"))
    assert "cuda_order_warning" not in info["source"]


# --------------------------------------------------------------------------- /proc


def test_proc_only(tmp_path):
    info = detect(tmp_path, proc_root=str(make_proc(tmp_path)))
    assert info["tags"] == ["cpu", "cuda"]
    assert info["gpus"][0] == {"index": 0, "name": "NVIDIA H200", "memory_mb": None,
                               "uuid": UUID0}
    info = detect(tmp_path, env_for(tmp_path, CUDA_VISIBLE_DEVICES=UUID1),
                  proc_root=str(tmp_path / "proc"))
    assert [g["uuid"] for g in info["gpus"]] == [UUID1]
    info = detect(tmp_path, env_for(tmp_path, CUDA_VISIBLE_DEVICES=""),
                  proc_root=str(tmp_path / "proc"))
    assert info["tags"] == ["cpu"]


def test_proc_unreadable_and_garbage_entries(tmp_path):
    root = make_proc(tmp_path, gpus=[(UUID0, "NVIDIA A100")])
    gpus_dir = root / "driver" / "nvidia" / "gpus"
    (gpus_dir / "0000:02:00.0" / "information").mkdir(parents=True)  # read -> IsADirectoryError
    (gpus_dir / "0000:03:00.0").mkdir()
    (gpus_dir / "0000:03:00.0" / "information").write_bytes(b"\xff\xfe garbage\n" * 10)
    (gpus_dir / "0000:04:00.0").mkdir()  # no information file
    info = detect(tmp_path, proc_root=str(root))
    assert info["gpu_count"] == 1 and info["gpus"][0]["name"] == "NVIDIA A100"
    assert len(info["source"]["errors"]) == 2


def test_proc_gpus_is_a_file(tmp_path):
    root = tmp_path / "proc"
    (root / "driver" / "nvidia").mkdir(parents=True)
    (root / "driver" / "nvidia" / "gpus").write_text("surprise")
    info = detect(tmp_path, proc_root=str(root))
    assert info["tags"] == ["cpu"] and info["source"]["errors"]


# --------------------------------------------------------------------------- rocm, mps


def test_rocm_from_dev_kfd(tmp_path):
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "kfd").write_text("")
    info = detect(tmp_path, dev_root=str(dev))
    assert info["tags"] == ["cpu", "rocm"] and info["source"]["rocm"].endswith("kfd")
    for name in ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"):
        info = detect(tmp_path, env_for(tmp_path, **{name: ""}), dev_root=str(dev))
        assert info["tags"] == ["cpu"] and name in info["source"]["rocm_hidden"]
    info = detect(tmp_path, env_for(tmp_path, HIP_VISIBLE_DEVICES="0"), dev_root=str(dev))
    assert "rocm" in info["tags"]


def test_rocm_from_rocm_smi_on_path(tmp_path):
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "rocm-smi"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    info = detect(tmp_path)
    assert info["tags"] == ["cpu", "rocm"] and info["source"]["rocm"] == "rocm-smi on PATH"


def test_mps_on_apple_silicon(tmp_path, monkeypatch):
    monkeypatch.setattr(hardware.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(hardware.platform, "machine", lambda: "arm64")
    assert detect(tmp_path)["tags"] == ["cpu", "mps"]
    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")
    assert detect(tmp_path)["tags"] == ["cpu"]


# --------------------------------------------------------------------------- DTF_HARDWARE


def test_override_extends(tmp_path):
    make_smi(tmp_path)
    info = detect(tmp_path, env_for(tmp_path, DTF_HARDWARE="cuda,fp16 bf16"))
    assert info["tags"] == ["bf16", "cpu", "cuda", "fp16"]
    assert info["source"]["override"]["mode"] == "extend"
    assert info["source"]["fp16"] == "DTF_HARDWARE"
    assert info["source"]["cuda"].startswith("nvidia-smi")  # detected, not overridden


def test_override_extends_without_gpu(tmp_path):
    info = detect(tmp_path, env_for(tmp_path, DTF_HARDWARE="cuda"))
    assert info["tags"] == ["cpu", "cuda"] and info["gpu_count"] == 0
    assert info["source"]["cuda"] == "DTF_HARDWARE"


def test_override_replaces(tmp_path):
    make_smi(tmp_path)
    info = detect(tmp_path, env_for(tmp_path, DTF_HARDWARE="=cpu"))
    assert info["tags"] == ["cpu"]
    assert "cuda" not in info["source"]
    assert info["source"]["override"] == {"mode": "replace", "tags": ["cpu"],
                                          "detected": ["cpu", "cuda"]}
    assert info["gpu_count"] == 2  # facts stay; only the tags are replaced
    info = detect(tmp_path, env_for(tmp_path, DTF_HARDWARE=" = tpu , fp8"))
    assert info["tags"] == ["fp8", "tpu"]


def test_override_replace_with_nothing_valid_keeps_cpu(tmp_path):
    info = detect(tmp_path, env_for(tmp_path, DTF_HARDWARE="=Bad!,"))
    assert info["tags"] == ["cpu"]
    assert info["source"]["invalid_tags"] == ["Bad!"]


def test_override_invalid_tags_dropped(tmp_path):
    long_tag = "a" * 41
    info = detect(tmp_path, env_for(tmp_path, DTF_HARDWARE=f"FP16,ok.tag:1, b@d, {long_tag}, é"))
    assert info["tags"] == ["cpu", "fp16", "ok.tag:1"]
    assert info["source"]["invalid_tags"] == ["b@d", long_tag, "é"]


def test_override_blank_is_ignored(tmp_path):
    info = detect(tmp_path, env_for(tmp_path, DTF_HARDWARE="  "))
    assert info["tags"] == ["cpu"] and "override" not in info["source"]


def test_override_is_bounded():
    mode, tags, invalid = parse_override(",".join(f"t{i}" for i in range(5000)))
    assert mode == "extend" and len(tags) == 64
    assert len(invalid) <= 20
    assert parse_override(None) == (None, [], [])


# --------------------------------------------------------------------------- robustness


class ExplodingEnv(dict):
    def get(self, key, default=None):
        raise RuntimeError("boom")

    def items(self):
        raise RuntimeError("boom")


def test_environ_that_raises_still_gives_cpu(tmp_path):
    info = detect_hardware(ExplodingEnv(), proc_root=str(tmp_path), dev_root=str(tmp_path))
    assert "cpu" in info["tags"]


def test_bad_timeout_uses_default(tmp_path):
    make_smi(tmp_path)
    assert detect(tmp_path, timeout="soon")["gpu_count"] == 2


# --------------------------------------------------------------------------- count_gpus


def test_count_gpus_ignores_cuda_visible_devices(tmp_path):
    make_smi(tmp_path)
    env = env_for(tmp_path, CUDA_VISIBLE_DEVICES="")
    assert count_gpus(env, proc_root=str(tmp_path / "x")) == 2
    assert count_gpus(env, nvidia_smi=str(tmp_path / "missing"), proc_root=str(tmp_path)) == 0
    assert count_gpus({"PATH": str(tmp_path)}, proc_root=str(make_proc(tmp_path))) == 2


# --------------------------------------------------------------------------- parse_visible_devices


@pytest.mark.parametrize(
    "value, total, expected",
    [
        (None, 4, None),
        ("", 4, []),
        ("-1", 4, []),
        ("1", 4, [1]),
        ("3,1", 4, [3, 1]),
        ("0,1", 1, [0]),
        ("0, 2 ,x,3", 4, [0, 2]),
        ("1,1,2", 4, [1, 2]),
        ("0", 0, []),
        (UUID0, 2, []),  # no uuid table: unresolvable
    ],
)
def test_parse_visible_devices(value, total, expected):
    assert parse_visible_devices(value, total) == expected


def test_parse_visible_devices_with_uuids():
    table = {UUID0: 0, UUID1: 1, MIG0: 0}
    assert parse_visible_devices(f"{UUID1},{UUID0}", 2, table) == [1, 0]
    assert parse_visible_devices(UUID1.lower(), 2, table) == [1]
    assert parse_visible_devices("GPU-", 2, table) == []
    assert parse_visible_devices(MIG0, 2, table) == [0]
    assert parse_visible_devices(f"MIG-{UUID1}/1/0", 2, table) == [1]  # legacy MIG name
    assert parse_visible_devices(f"1,{UUID0}", 2, table) == [1, 0]


# --------------------------------------------------------------------------- gpu_slice


def test_gpu_slice_indexes_into_user_list():
    assert gpu_slice(0, 2, "2,3,5,7", 8) == "2,3"
    assert gpu_slice(1, 2, "2,3,5,7", 8) == "5,7"
    assert gpu_slice(2, 2, "2,3,5,7", 8) == "2,3"  # wraps around
    assert gpu_slice(3, 2, "2,3,5,7", 8) == "5,7"


def test_gpu_slice_unset_uses_all():
    assert [gpu_slice(k, 1, None, 4) for k in range(6)] == ["0", "1", "2", "3", "0", "1"]
    assert gpu_slice(0, 2, None, 4) == "0,1"
    assert gpu_slice(1, 2, None, 4) == "2,3"


def test_gpu_slice_uneven_wrap_is_per_position():
    # 3 GPUs, 2 per worker: positions [2,4) -> entries 2 and 0
    assert [gpu_slice(k, 2, None, 3) for k in range(3)] == ["0,1", "2,0", "1,2"]


def test_gpu_slice_keeps_uuids_as_written():
    assert gpu_slice(1, 1, f"{UUID1}, {UUID0}", 2) == UUID0
    assert gpu_slice(0, 2, f"{UUID1},{MIG0}", 2) == f"{UUID1},{MIG0}"


def test_gpu_slice_edge_cases():
    assert gpu_slice(0, 1, None, 0) == ""
    assert gpu_slice(0, 1, "2,3", 0) == ""
    assert gpu_slice(0, 1, "", 4) == ""
    assert gpu_slice(3, 1, "-1", 4) == ""
    assert gpu_slice(0, 2, "1,-1,2", 4) == "1"  # read like CUDA: stop at -1
    assert gpu_slice(0, 2, "3,9", 4) == "3"  # 9 >= total
    assert gpu_slice(0, 8, "0,1,2", 4) == "0,1,2"  # N > list: whole list, no duplicates
    assert gpu_slice(1, 8, "0,1,2", 4) == "2,0,1"  # ... rotated by the slot's start
    assert gpu_slice(0, 2, "1,1,2", 4) == "1,2"
    for bad in (-1, True, "0"):
        with pytest.raises(ValueError):
            gpu_slice(bad, 1, None, 4)
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError):
            gpu_slice(0, bad, None, 4)


def test_gpu_slices_of_mixed_sizes_do_not_overlap_while_gpus_last():
    gpu_slices = hardware.gpu_slices
    assert gpu_slices([1, 1, 2], 3, None, 4) == ["0", "1", "2,3"]
    assert gpu_slices([2, 1], 3, "GPU-a,GPU-b,GPU-c,GPU-d", 4) == ["GPU-a,GPU-b", "GPU-c", "GPU-d,GPU-a"]
    assert gpu_slices([0, 2], 2, None, 4) == ["", "0,1"]  # a worker with no GPU beside one with two
    assert gpu_slices([1, 1, 2], 4, None, 4) == ["0", "1", "2,3", "0"]  # past the list: it starts over
    assert gpu_slices([2, 2], 3, None, 3) == ["0,1", "2,0", "1,2"]  # more asked than there are: wrap
    assert gpu_slices([1, 1], 2, None, 0) == ["", ""]


def test_gpu_slices_of_one_size_are_gpu_slice():
    for n in (1, 2, 3):
        for total in (0, 3, 4):
            assert hardware.gpu_slices(n, 5, None, total) == [gpu_slice(k, n, None, total) for k in range(5)]
            assert hardware.gpu_slices([n], 5, "3,1", total) == [gpu_slice(k, n, "3,1", total) for k in range(5)]


def test_gpu_slices_reject_bad_sizes():
    for bad in ([], [1, -1], [True], ["1"], 1.5, -1):
        with pytest.raises(ValueError):
            hardware.gpu_slices(bad, 2, None, 4)


class _Spec:
    def __init__(self, popen=True, via=None, env=None):
        self.popen, self.via, self.env = popen, via, env


def test_pin_gpus_gives_each_local_spec_its_slot_of_a_mixed_list(monkeypatch):
    monkeypatch.setattr(hardware, "count_gpus", lambda *a, **k: 4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    specs = [_Spec(), _Spec(popen=False), _Spec(env={"X": "1"}), _Spec(), _Spec(via="gw0")]
    hardware.pin_gpus(specs, [1, 1, 2])
    assert [s.env and s.env.get("CUDA_VISIBLE_DEVICES") for s in specs] == ["0", None, "1", "2,3", None]
    assert specs[2].env["X"] == "1"
    hardware.pin_gpus(specs, 2)  # one size for all, as before
    assert [s.env and s.env.get("CUDA_VISIBLE_DEVICES") for s in specs] == ["0,1", None, "2,3", "0,1", None]


# --------------------------------------------------------------------------- matches


def test_matches_any_of():
    assert matches(["cuda", "rocm"], ["cpu", "rocm"])
    assert not matches(["cuda", "rocm"], ["cpu"])
    assert matches([], ["cpu"])
    assert matches("cuda", ["cuda"]) and not matches("cuda", ["c", "u"])
    assert matches(("CUDA ",), {"cuda"})
    assert not matches(["cuda"], [])


# --------------------------------------------------------------------------- remote use


def test_source_execs_as_channelexec(tmp_path):
    make_smi(tmp_path)
    src = SRC_PATH.read_text()
    ns = {"__name__": "__channelexec__"}
    exec(compile(src, "hardware", "exec"), ns)  # noqa: S102
    info = ns["detect_hardware"](env_for(tmp_path), proc_root=str(tmp_path / "x"),
                                 dev_root=str(tmp_path / "x"))
    assert info["gpu_count"] == 2 and "cuda" in info["tags"]
    assert ns["gpu_slice"](1, 2, "2,3,5,7", 8) == "5,7"
    # nothing else ran: no channel was touched, default call works too
    assert "cpu" in ns["detect_hardware"]()["tags"]


def test_module_level_is_definitions_and_stdlib_imports_only():
    tree = ast.parse(SRC_PATH.read_text())
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign,
               ast.AnnAssign)
    for i, node in enumerate(tree.body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # docstring
        assert isinstance(node, allowed), ast.dump(node)[:80]
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Call):  # only re.compile(...) at import
                    assert ast.unparse(sub.func) == "re.compile", ast.unparse(sub)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module != "__future__"
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            assert name.split(".")[0] in sys.stdlib_module_names, name


def test_imports_no_pytest_xdist_or_torch(tmp_path):
    make_smi(tmp_path)
    code = textwrap.dedent(f"""
        import importlib.util, json, sys
        for name in ("pytest", "_pytest", "xdist", "execnet", "torch", "pytest_dtf_errors"):
            sys.modules[name] = None
        spec = importlib.util.spec_from_file_location("hw", {str(SRC_PATH)!r})
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        info = mod.detect_hardware({{"PATH": {str(tmp_path / "bin")!r}}},
                                   proc_root="/nonexistent", dev_root="/nonexistent")
        loaded = [n for n in ("pytest", "xdist", "execnet", "torch", "pluggy")
                  if sys.modules.get(n) is not None]
        print(json.dumps({{"info": info, "loaded": loaded}}))
    """)
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["loaded"] == []
    assert result["info"]["gpu_count"] == 2


def test_remote_exec_over_execnet(tmp_path):
    execnet = pytest.importorskip("execnet")
    make_smi(tmp_path)
    code = SRC_PATH.read_text() + textwrap.dedent("""

        env = channel.receive()
        channel.send(detect_hardware(env, proc_root="/nonexistent", dev_root="/nonexistent"))
    """)
    gw = execnet.makegateway(f"popen//python={sys.executable}")
    try:
        ch = gw.remote_exec(code)
        ch.send(env_for(tmp_path, CUDA_VISIBLE_DEVICES="1", DTF_HARDWARE="fp16"))
        info = ch.receive(timeout=30)
    finally:
        gw.exit()
    assert info["tags"] == ["cpu", "cuda", "fp16"]
    assert [g["uuid"] for g in info["gpus"]] == [UUID1]
