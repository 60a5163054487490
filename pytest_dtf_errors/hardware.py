"""Hardware detection, worker tags and GPU pinning for pytest-dtf-errors.

STDLIB ONLY and SELF-CONTAINED.  The controller sends this file's source
verbatim to every worker with ``gateway.remote_exec(source + caller_code)``,
so:

* nothing here imports pytest, xdist, execnet, torch or the rest of the
  package, and there are no relative imports;
* module-level code only imports stdlib modules and defines constants and
  functions; executing the source (also as ``__name__ == "__channelexec__"``)
  runs nothing -- the caller appends its own code that calls
  :func:`detect_hardware` and sends the result over the channel;
* no ``from __future__`` import (it must be the first statement, and the
  caller may prepend code), so annotations are evaluated: Python >= 3.10.

Public functions: :func:`detect_hardware`, :func:`count_gpus`,
:func:`parse_visible_devices`, :func:`gpu_slice`, :func:`gpu_slices`,
:func:`pin_gpus`, :func:`matches`,
:func:`parse_override`, :func:`valid_tag`.
"""

import os
import platform
import re
import selectors
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "DEFAULT_TIMEOUT",
    "count_gpus",
    "detect_hardware",
    "gpu_slice",
    "gpu_slices",
    "matches",
    "parse_override",
    "parse_visible_devices",
    "pin_gpus",
    "valid_tag",
]

#: Seconds one ``nvidia-smi`` call may take before it is killed.
DEFAULT_TIMEOUT = 3.0

_QUERY_ARGS = ("--query-gpu=index,name,memory.total,uuid", "--format=csv,noheader,nounits")
_TAG_RE = re.compile(r"^[a-z0-9_.:-]{1,40}$")
_INT_RE = re.compile(r"^[0-9]{1,9}$")
_SMI_L_GPU_RE = re.compile(r"^GPU\s+(\d+):\s*(.*?)\s*\(UUID:\s*([^\s)]+)\s*\)\s*$")
_SMI_L_MIG_RE = re.compile(r"^MIG\b.*\(UUID:\s*(MIG-[^\s)]+)\s*\)\s*$")

_MAX_OUTPUT = 1 << 20  # bytes read from one nvidia-smi call
_MAX_GPUS = 1024  # GPUs taken from one source
_MAX_PROC_FILE = 1 << 16  # bytes read from one /proc information file
_MAX_OVERRIDE = 4096  # characters of DTF_HARDWARE looked at
_MAX_OVERRIDE_TAGS = 64
_MAX_ERRORS = 20
_MAX_TEXT = 200  # characters of one error / invalid tag kept in "source"
_HIDDEN_VALUES = ("void", "none")  # NVIDIA_VISIBLE_DEVICES values that hide all GPUs


# --------------------------------------------------------------------------- small helpers


def _short(value: Any, limit: int = _MAX_TEXT) -> str:
    try:
        text = value if isinstance(value, str) else repr(value)
    except Exception:  # noqa: BLE001 - a repr() that raises
        text = "<unprintable>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _note(errors: list[str], message: Any) -> None:
    if len(errors) < _MAX_ERRORS:
        errors.append(_short(message))


def _env_get(environ: Mapping[str, str], name: str) -> str | None:
    try:
        value = environ.get(name)
    except Exception:  # noqa: BLE001 - an odd Mapping
        return None
    if value is None:
        return None
    if not isinstance(value, str):
        try:
            value = str(value)
        except Exception:  # noqa: BLE001
            return None
    return value


def valid_tag(tag: Any) -> bool:
    """True if *tag* is a valid hardware tag: lowercase ``[a-z0-9_.:-]{1,40}``."""
    return isinstance(tag, str) and _TAG_RE.match(tag) is not None


def _norm_tag(tag: Any) -> str | None:
    if not isinstance(tag, str):
        return None
    tag = tag.strip().lower()
    return tag if _TAG_RE.match(tag) else None


# --------------------------------------------------------------------------- processes


def _run(argv: list[str], env: dict[str, str] | None, timeout: float) -> tuple[str, int, str]:
    """Run *argv*, return ``(stdout, returncode, problem)``.

    Bounded: at most *timeout* seconds (the whole process group is killed on
    timeout, so a shell script's ``sleep`` does not linger) and at most
    ``_MAX_OUTPUT`` bytes.  *problem* is "" when the run ended normally.
    Raises OSError when the program cannot be started.
    """
    if os.name != "posix":  # no select() on pipes: plain bounded run
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, env=env, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            return "", -1, f"timeout after {timeout:.1f}s"
        out = done.stdout[:_MAX_OUTPUT].decode("utf-8", "replace")
        return out, done.returncode, ""

    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=env, close_fds=True, start_new_session=True,
    )
    chunks: list[bytes] = []
    size = 0
    problem = ""
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    problem = f"timeout after {timeout:.1f}s"
                    break
                if not sel.select(remaining):
                    continue
                data = os.read(fd, 65536)
                if not data:
                    break
                chunks.append(data)
                size += len(data)
                if size > _MAX_OUTPUT:
                    problem = f"more than {_MAX_OUTPUT} bytes of output"
                    break
        if not problem:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                problem = f"timeout after {timeout:.1f}s"
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                try:
                    proc.kill()
                except OSError:
                    pass
            try:
                proc.wait(1.0)
            except subprocess.TimeoutExpired:
                pass
        if proc.stdout is not None:
            proc.stdout.close()
    out = b"".join(chunks)[:_MAX_OUTPUT].decode("utf-8", "replace")
    return out, (proc.returncode if proc.returncode is not None else -1), problem


def _find_nvidia_smi(environ: Mapping[str, str], nvidia_smi: str | None) -> str | None:
    if nvidia_smi:
        return nvidia_smi
    path = _env_get(environ, "PATH")
    return shutil.which("nvidia-smi", path=path if path is not None else os.defpath)


def _subprocess_env(environ: Mapping[str, str]) -> dict[str, str] | None:
    if environ is os.environ:
        return None
    try:
        env = {str(k): str(v) for k, v in environ.items()}
    except Exception:  # noqa: BLE001
        return None
    env.setdefault("PATH", os.defpath)
    return env


# --------------------------------------------------------------------------- parsers


def _int_or_none(text: str) -> int | None:
    text = text.strip()
    return int(text) if _INT_RE.match(text) else None


def _parse_query_csv(text: str) -> tuple[list[dict[str, Any]], int]:
    """Parse ``--query-gpu=index,name,memory.total,uuid`` csv; return (gpus, bad lines)."""
    gpus: list[dict[str, Any]] = []
    bad = 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4 or not _INT_RE.match(fields[0]):
            bad += 1
            continue
        raw_uuid = fields[-1]
        name = ", ".join(fields[1:-2]) or "NVIDIA GPU"
        uuid = raw_uuid if raw_uuid.startswith("GPU-") and len(raw_uuid) <= 100 else None
        gpus.append({
            "index": int(fields[0]),
            "name": _short(name, 100),
            "memory_mb": _int_or_none(fields[-2]),
            "uuid": uuid,
        })
        if len(gpus) >= _MAX_GPUS:
            break
    return gpus, bad


def _parse_smi_l(text: str) -> tuple[list[dict[str, Any]], dict[str, int], int]:
    """Parse ``nvidia-smi -L``; return (gpus, MIG uuid -> GPU index, bad lines)."""
    gpus: list[dict[str, Any]] = []
    mig: dict[str, int] = {}
    bad = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = _SMI_L_GPU_RE.match(line)
        if m:
            uuid = m.group(3)
            gpus.append({
                "index": int(m.group(1)),
                "name": _short(m.group(2) or "NVIDIA GPU", 100),
                "memory_mb": None,
                "uuid": uuid if uuid.startswith("GPU-") and len(uuid) <= 100 else None,
            })
            if len(gpus) >= _MAX_GPUS:
                break
            continue
        m = _SMI_L_MIG_RE.match(line)
        if m and gpus:
            mig[m.group(1)] = gpus[-1]["index"]
            continue
        bad += 1
    return gpus, mig, bad


def _read_proc(proc_root: str, errors: list[str]) -> list[dict[str, Any]]:
    """GPUs listed in ``<proc_root>/driver/nvidia/gpus/*/information``, in PCI bus order."""
    base = os.path.join(proc_root, "driver", "nvidia", "gpus")
    try:
        entries = sorted(os.listdir(base))[:_MAX_GPUS]
    except FileNotFoundError:
        return []
    except Exception as exc:  # noqa: BLE001
        _note(errors, f"{base}: {exc}")
        return []
    gpus: list[dict[str, Any]] = []
    for bus in entries:
        path = os.path.join(base, bus, "information")
        try:
            with open(path, "rb") as fh:
                text = fh.read(_MAX_PROC_FILE).decode("utf-8", "replace")
        except FileNotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001
            _note(errors, f"{path}: {exc}")
            continue
        info: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                info[key.strip().lower()] = value.strip()
        uuid = info.get("gpu uuid") or None
        if uuid is not None and not (uuid.startswith("GPU-") and len(uuid) <= 100):
            uuid = None
        if "model" not in info and uuid is None:
            _note(errors, f"{path}: no Model or GPU UUID line")
            continue
        gpus.append({
            "index": len(gpus),
            "name": _short(info.get("model") or "NVIDIA GPU", 100),
            "memory_mb": None,
            "uuid": uuid,
            "bus": _short(bus, 40),
        })
    return gpus


# --------------------------------------------------------------------------- visibility


def _lookup_uuid(low: str, table: Mapping[str, int]) -> int | None:
    """Physical index of a lowercased GPU-/MIG- uuid: exact, unique prefix or legacy MIG name."""
    if low in table:
        return table[low]
    hits = [i for k, i in table.items() if k.startswith(low)]
    if len(hits) == 1:
        return hits[0]
    if not hits and low.startswith("mig-gpu-"):
        # legacy MIG-GPU-<gpu uuid>/<gi>/<ci> names its parent GPU
        parent = low[4:].split("/", 1)[0]
        if parent in table:
            return table[parent]
    return None


def _resolve_visible(
    value: str | None, total: int, uuids: Mapping[str, int] | None = None
) -> list[tuple[int, str | None]] | None:
    """CUDA_VISIBLE_DEVICES -> ``[(physical index, MIG uuid or None), ...]``; None = all."""
    if value is None:
        return None
    table: dict[str, int] = {}
    if uuids:
        for name, idx in uuids.items():
            if isinstance(name, str) and isinstance(idx, int) and 0 <= idx < total:
                table[name.lower()] = idx
    out: list[tuple[int, str | None]] = []
    seen: set[tuple[int, str | None]] = set()
    for entry in str(value).split(","):
        entry = entry.strip()
        key: tuple[int, str | None]
        if _INT_RE.match(entry):
            idx = int(entry)
            if idx >= total:
                break  # CUDA stops at the first invalid entry
            key = (idx, None)
        elif entry[:4].upper() in ("GPU-", "MIG-") and len(entry) > 4:
            idx_opt = _lookup_uuid(entry.lower(), table)
            if idx_opt is None:
                break  # unknown or ambiguous UUID: invalid, CUDA stops here
            idx = idx_opt
            key = (idx, entry if entry[:4].upper() == "MIG-" else None)
        else:
            break  # "-1", "", garbage: invalid, CUDA stops here
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out


def parse_visible_devices(
    value: str | None, total: int, uuids: Mapping[str, int] | None = None
) -> list[int] | None:
    """Which physical GPUs a ``CUDA_VISIBLE_DEVICES`` value exposes, in CUDA order.

    ``None`` (variable unset) -> ``None``: unrestricted, all *total* GPUs.
    Otherwise a list of physical indices (``0 <= i < total``). Like the CUDA
    runtime, entries are read left to right and reading stops at the first
    invalid one, so ``""``, ``"-1"``, ``"7"`` on a 2-GPU machine or
    ``"0,-1,1"`` (-> ``[0]``) restrict to fewer or no GPUs. Duplicates are
    dropped. UUID entries (``GPU-...``, a unique prefix of one, or
    ``MIG-...``) are resolved through *uuids* (uuid -> physical index);
    without it they are invalid. Two MIG instances of one GPU give that
    index twice.
    """
    resolved = _resolve_visible(value, max(0, int(total)), uuids)
    if resolved is None:
        return None
    return [idx for idx, _ in resolved]


def gpu_slice(slot: int, per_worker: int, visible: str | None, total: int) -> str:
    """CUDA_VISIBLE_DEVICES for worker *slot* under ``--dtf-gpus-per-worker per_worker``.

    The GPUs to share are the controller's own ``CUDA_VISIBLE_DEVICES``
    (*visible*) entry by entry, as written (UUIDs stay UUIDs; read like CUDA
    does: stripped, stopping at the first invalid entry such as ``-1`` or an
    index ``>= total``; duplicates dropped), or ``0..total-1`` when it is
    unset. Slot ``k`` gets entries ``[k*N, (k+1)*N)`` of that list; positions
    past the end WRAP AROUND modulo the list length, so with more slots than
    GPUs workers share GPUs round-robin (slot ``len//N`` starts over at the
    first entry). A slice never names a GPU twice: with ``N`` larger than the
    list, each worker gets the whole list (rotated by its start position). Returns the comma-joined value;
    ``""`` when there is no GPU to give (*total* is 0 or the list is empty).
    """
    if isinstance(slot, bool) or not isinstance(slot, int) or slot < 0:
        raise ValueError(f"slot must be an int >= 0, got {slot!r}")
    if isinstance(per_worker, bool) or not isinstance(per_worker, int) or per_worker < 1:
        raise ValueError(f"per_worker must be an int >= 1, got {per_worker!r}")
    return _take(_shared_gpus(visible, total), slot * per_worker, per_worker)


def gpu_slices(per_worker: "int | Sequence[int]", workers: int, visible: str | None, total: int) -> list[str]:
    """CUDA_VISIBLE_DEVICES for the first *workers* slots, under ``--dtf-gpus-per-worker``.

    *per_worker* is one size for every slot (``2``) or one size per slot
    (``[1, 1, 2]``; past its end the list starts over). Each slot's slice
    starts where the one before it ended, so slices never overlap while the
    GPUs last: ``[1, 1, 2]`` over 4 GPUs gives ``"0"``, ``"1"``, ``"2,3"``.
    Past the end of the list positions wrap around, as in :func:`gpu_slice`
    (which this equals for a single size). A size of 0 gives ``""``: no GPU.
    """
    sizes = [per_worker] if isinstance(per_worker, int) else list(per_worker) if isinstance(per_worker, (list, tuple)) else []
    if not sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in sizes):
        raise ValueError(f"per_worker must be an int >= 0 or a non-empty list of them, got {per_worker!r}")
    base = _shared_gpus(visible, total)
    out: list[str] = []
    start = 0
    for slot in range(max(0, int(workers))):
        size = sizes[slot % len(sizes)]
        out.append(_take(base, start, size))
        start += size
    return out


def _shared_gpus(visible: str | None, total: int) -> list[str]:
    """The GPUs pinning shares out: *visible* read like CUDA does, kept as written; else 0..total-1."""
    total = max(0, int(total))
    if total == 0:
        return []
    if visible is None:
        return [str(i) for i in range(total)]
    base: list[str] = []
    seen = set()
    for entry in str(visible).split(","):
        entry = entry.strip()
        if _INT_RE.match(entry):
            if int(entry) >= total:
                break
            key = str(int(entry))
        elif entry[:4].upper() in ("GPU-", "MIG-") and len(entry) > 4:
            key = entry
        else:
            break
        if key.lower() not in seen:
            seen.add(key.lower())
            base.append(key)
    return base


def _take(base: list[str], start: int, size: int) -> str:
    """Positions ``[start, start+size)`` of *base*, wrapping around, no entry twice."""
    if not base or size <= 0:
        return ""
    n = len(base)
    picked: list[str] = []
    for pos in range(start, start + min(size, n)):
        entry = base[pos % n]
        if entry not in picked:
            picked.append(entry)
    return ",".join(picked)


# --------------------------------------------------------------------------- GPUs


def _physical_gpus(
    environ: Mapping[str, str],
    nvidia_smi: str | None,
    proc_root: str,
    timeout: float,
    errors: list[str],
    want_mig: bool = False,
) -> tuple[list[dict[str, Any]], str, dict[str, int]]:
    """All NVIDIA GPUs of the machine: (gpus, source, MIG uuid -> index).

    A working ``nvidia-smi`` is authoritative (also when it lists none);
    when it is missing or fails, ``/proc/driver/nvidia/gpus`` is used.
    """
    mig: dict[str, int] = {}
    smi = None
    try:
        smi = _find_nvidia_smi(environ, nvidia_smi)
    except Exception as exc:  # noqa: BLE001
        _note(errors, f"looking up nvidia-smi: {exc}")
    gpus: list[dict[str, Any]] | None = None
    source = ""
    if smi:
        env = _subprocess_env(environ)
        timed_out = False
        try:
            out, rc, problem = _run([smi] + list(_QUERY_ARGS), env, timeout)
            if problem:
                timed_out = problem.startswith("timeout")
                _note(errors, f"nvidia-smi --query-gpu: {problem}")
            elif rc != 0:
                _note(errors, f"nvidia-smi --query-gpu: exit status {rc}")
            else:
                parsed, bad = _parse_query_csv(out)
                if bad:
                    _note(errors, f"nvidia-smi --query-gpu: {bad} unparseable line(s)")
                if parsed or not bad:
                    gpus, source = parsed, "nvidia-smi --query-gpu"
        except Exception as exc:  # noqa: BLE001 - missing, not executable, ...
            _note(errors, f"nvidia-smi --query-gpu: {type(exc).__name__}: {exc}")
        if not timed_out and (gpus is None or want_mig):
            try:
                out, rc, problem = _run([smi, "-L"], env, timeout)
                if problem:
                    _note(errors, f"nvidia-smi -L: {problem}")
                elif rc != 0:
                    _note(errors, f"nvidia-smi -L: exit status {rc}")
                else:
                    parsed, mig, bad = _parse_smi_l(out)
                    if bad and not parsed:
                        _note(errors, f"nvidia-smi -L: {bad} unparseable line(s)")
                    if gpus is None and (parsed or not bad):
                        gpus, source = parsed, "nvidia-smi -L"
            except Exception as exc:  # noqa: BLE001
                _note(errors, f"nvidia-smi -L: {type(exc).__name__}: {exc}")
    proc: list[dict[str, Any]] = []
    try:
        proc = _read_proc(proc_root, errors)
    except Exception as exc:  # noqa: BLE001
        _note(errors, f"reading {proc_root}: {exc}")
    if gpus is None:
        gpus, source = proc, ("/proc/driver/nvidia/gpus" if proc else "none")
    else:
        # fill a missing uuid from /proc by matching position (same PCI order)
        for gpu in gpus:
            if gpu.get("uuid") is None and 0 <= gpu["index"] < len(proc):
                gpu["uuid"] = proc[gpu["index"]].get("uuid")
    for gpu in gpus:
        gpu.pop("bus", None)
    gpus = sorted(gpus, key=lambda g: g["index"])
    # re-number densely if a source gave odd indices (garbage, gaps)
    if [g["index"] for g in gpus] != list(range(len(gpus))):
        _note(errors, f"GPU indices {[g['index'] for g in gpus][:16]} renumbered")
        old = {}
        for i, gpu in enumerate(gpus):
            old[gpu["index"]] = i
            gpu["index"] = i
        mig = {k: old[v] for k, v in mig.items() if v in old}
    return gpus, source, mig


def pin_gpus(specs: Sequence[Any], per_worker: "int | Sequence[int]") -> None:
    """``--dtf-gpus-per-worker``: write each local (popen) spec's CUDA_VISIBLE_DEVICES.

    *per_worker* is one size for every worker or one per worker slot (see
    :func:`gpu_slices`). The slice goes into the spec's environment, so a
    replacement worker (xdist copies the spec) keeps the slot of the one it
    replaces. A remote host's GPUs are its own business.
    """
    local = [spec for spec in specs if getattr(spec, "popen", False) and not getattr(spec, "via", None)]
    if not local:
        return
    slices = gpu_slices(per_worker, len(local), os.environ.get("CUDA_VISIBLE_DEVICES"), count_gpus())
    for spec, visible in zip(local, slices):
        if spec.env is None:
            spec.env = {}
        spec.env["CUDA_VISIBLE_DEVICES"] = visible


def count_gpus(
    environ: Mapping[str, str] | None = None,
    nvidia_smi: str | None = None,
    proc_root: str = "/proc",
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """Physical NVIDIA GPUs on this machine, ignoring CUDA_VISIBLE_DEVICES.

    For the controller's GPU pinning. Never raises; 0 when none are found.
    """
    try:
        env = os.environ if environ is None else environ
        gpus, _source, _mig = _physical_gpus(env, nvidia_smi, proc_root, timeout, [])
        return len(gpus)
    except Exception:  # noqa: BLE001
        return 0


# --------------------------------------------------------------------------- tags


def parse_override(value: str | None) -> tuple[str | None, list[str], list[str]]:
    """Parse a ``DTF_HARDWARE`` value -> ``(mode, tags, invalid)``.

    *mode* is None (unset or blank), ``"replace"`` (leading ``=``) or
    ``"extend"``. Tags are separated by commas and/or whitespace, stripped and
    lowercased, then must match ``[a-z0-9_.:-]{1,40}``; the others are
    returned in *invalid* (shortened). At most 64 tags are taken.
    """
    if value is None:
        return None, [], []
    text = str(value)
    invalid: list[str] = []
    if len(text) > _MAX_OVERRIDE:
        invalid.append(f"<{len(text) - _MAX_OVERRIDE} characters past {_MAX_OVERRIDE} ignored>")
        text = text[:_MAX_OVERRIDE]
    text = text.strip()
    if not text:
        return None, [], invalid
    mode = "extend"
    if text.startswith("="):
        mode = "replace"
        text = text[1:]
    tags: list[str] = []
    for raw in re.split(r"[,\s]+", text):
        if not raw:
            continue
        tag = _norm_tag(raw)
        if tag is None:
            if len(invalid) < _MAX_ERRORS:
                invalid.append(_short(raw, 60))
            continue
        if tag not in tags:
            if len(tags) >= _MAX_OVERRIDE_TAGS:
                if len(invalid) < _MAX_ERRORS:
                    invalid.append(_short(raw, 60) + f" (over {_MAX_OVERRIDE_TAGS} tags)")
                continue
            tags.append(tag)
    return mode, tags, invalid


def matches(required: Iterable[str], tags: Iterable[str]) -> bool:
    """Any-of: True if one of *required* is in *tags* (case-insensitive).

    Nothing required (empty) -> True. A single string counts as one tag.
    """
    if isinstance(required, str):
        required = [required]
    if isinstance(tags, str):
        tags = [tags]
    want = {t.strip().lower() for t in required if isinstance(t, str)}
    want.discard("")
    if not want:
        return True
    have = {t.strip().lower() for t in tags if isinstance(t, str)}
    return not want.isdisjoint(have)


def _hidden_by(environ: Mapping[str, str]) -> str | None:
    nvd = _env_get(environ, "NVIDIA_VISIBLE_DEVICES")
    if nvd is not None and nvd.strip().lower() in _HIDDEN_VALUES:
        return f"NVIDIA_VISIBLE_DEVICES={_short(nvd.strip(), 20)}"
    return None


def _detect_cuda(
    environ: Mapping[str, str],
    nvidia_smi: str | None,
    proc_root: str,
    timeout: float,
    source: dict[str, Any],
    errors: list[str],
) -> list[dict[str, Any]]:
    cvd = _env_get(environ, "CUDA_VISIBLE_DEVICES")
    source["cuda_visible_devices"] = None if cvd is None else _short(cvd, 200)
    want_mig = cvd is not None and "mig-" in cvd.lower()
    physical, gpu_source, mig = _physical_gpus(
        environ, nvidia_smi, proc_root, timeout, errors, want_mig=want_mig
    )
    source["gpus"] = gpu_source
    source["physical_gpu_count"] = len(physical)
    if not physical:
        return []
    hidden = _hidden_by(environ)
    if hidden:
        source["cuda_hidden"] = hidden
        return []
    table: dict[str, int] = {}
    for gpu in physical:
        if gpu.get("uuid"):
            table[gpu["uuid"]] = gpu["index"]
    table.update(mig)
    resolved = _resolve_visible(cvd, len(physical), table)
    order = _env_get(environ, "CUDA_DEVICE_ORDER")
    if (
        cvd is not None
        and len({g.get("name") for g in physical}) > 1
        and (order or "").strip().upper() != "PCI_BUS_ID"
        and any(_INT_RE.match(e.strip()) for e in cvd.split(","))
    ):
        # CUDA numbers devices fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID;
        # nvidia-smi (and we) number them in PCI order: on a mixed machine the
        # indices in CUDA_VISIBLE_DEVICES may name other GPUs than assumed.
        source["cuda_order_warning"] = "mixed GPU models; set CUDA_DEVICE_ORDER=PCI_BUS_ID"
    if resolved is None:
        return [dict(g) for g in physical]
    visible: list[dict[str, Any]] = []
    for idx, mig_uuid in resolved:
        gpu = dict(physical[idx])
        if mig_uuid is not None:
            gpu["memory_mb"] = None
            gpu["uuid"] = mig_uuid
            gpu["mig"] = True
        visible.append(gpu)
    if not visible:
        source["cuda_hidden"] = f"CUDA_VISIBLE_DEVICES={_short(cvd, 60)!r}"
    return visible


def _detect_rocm(environ: Mapping[str, str], dev_root: str) -> tuple[str | None, str | None]:
    """-> (how rocm was found, why it is hidden)."""
    how = None
    if os.path.exists(os.path.join(dev_root, "kfd")):
        how = os.path.join(dev_root, "kfd")
    else:
        path = _env_get(environ, "PATH")
        if shutil.which("rocm-smi", path=path if path is not None else os.defpath):
            how = "rocm-smi on PATH"
    if how is None:
        return None, None
    for name in ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"):
        value = _env_get(environ, name)
        if value is not None and value.strip() in ("", "-1"):
            return how, f"{name}={value!r}"
    return how, None


def detect_hardware(
    environ: Mapping[str, str] | None = None,
    *,
    nvidia_smi: str | None = None,
    proc_root: str = "/proc",
    dev_root: str = "/dev",
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Detect this process's hardware; return a JSON-ready dict.

    ``{"tags": [...], "gpu_count": int, "gpus": [...], "host": str,
    "source": {...}}``. ``gpus`` are the NVIDIA GPUs visible to this process,
    in CUDA ordinal order (``cuda:0`` first); ``index`` is the physical
    (nvidia-smi) index. ``source`` says for each tag how it was found, plus
    ``gpus`` (which source listed the GPUs), ``physical_gpu_count``,
    ``cuda_visible_devices``, ``cuda_hidden``/``rocm_hidden`` (why a present
    device does not count), ``override`` and ``invalid_tags`` (DTF_HARDWARE)
    and ``errors``. Never raises; at worst returns ``["cpu"]``.
    """
    errors: list[str] = []
    source: dict[str, Any] = {"cpu": "always"}
    tags = {"cpu"}
    gpus: list[dict[str, Any]] = []
    env: Mapping[str, str] = os.environ if environ is None else environ
    try:
        timeout = float(timeout)
        if not timeout > 0:
            timeout = DEFAULT_TIMEOUT
    except Exception:  # noqa: BLE001
        timeout = DEFAULT_TIMEOUT

    try:
        gpus = _detect_cuda(env, nvidia_smi, proc_root, timeout, source, errors)
        if gpus:
            tags.add("cuda")
            source["cuda"] = (
                f"{source.get('gpus')}: {len(gpus)} of "
                f"{source.get('physical_gpu_count', 0)} GPU(s) visible"
            )
    except Exception as exc:  # noqa: BLE001
        gpus = []
        _note(errors, f"cuda detection: {type(exc).__name__}: {exc}")

    try:
        how, hidden = _detect_rocm(env, dev_root)
        if how and hidden:
            source["rocm_hidden"] = hidden
        elif how:
            tags.add("rocm")
            source["rocm"] = how
    except Exception as exc:  # noqa: BLE001
        _note(errors, f"rocm detection: {type(exc).__name__}: {exc}")

    try:
        if platform.system() == "Darwin" and platform.machine() == "arm64":
            tags.add("mps")
            source["mps"] = "platform Darwin arm64"
    except Exception as exc:  # noqa: BLE001
        _note(errors, f"mps detection: {type(exc).__name__}: {exc}")

    try:
        mode, extra, invalid = parse_override(_env_get(env, "DTF_HARDWARE"))
        if invalid:
            source["invalid_tags"] = invalid
        if mode is not None:
            source["override"] = {"mode": mode, "tags": list(extra)}
            if mode == "replace":
                detected = sorted(tags)
                tags = set(extra)
                if not tags:
                    tags = {"cpu"}
                    _note(errors, "DTF_HARDWARE replaced detection with no valid tag; kept cpu")
                for tag in detected:
                    if tag not in tags:
                        source.pop(tag, None)
                source["override"]["detected"] = detected
            else:
                tags.update(extra)
            for tag in extra:
                if tag in tags and (mode == "replace" or tag not in source):
                    source[tag] = "DTF_HARDWARE"
    except Exception as exc:  # noqa: BLE001
        _note(errors, f"DTF_HARDWARE: {type(exc).__name__}: {exc}")

    try:
        host = socket.gethostname()
    except Exception:  # noqa: BLE001
        host = "unknown"
    if errors:
        source["errors"] = errors
    return {
        "tags": sorted(tags),
        "gpu_count": len(gpus),
        "gpus": gpus,
        "host": host,
        "source": source,
    }


# Executed as ``__channelexec__`` by execnet's remote_exec, this module only
# defines the names above; the caller appends the code that uses them.
