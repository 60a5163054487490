"""Sticky GPU errors: the ones after which every GPU call of the process fails.

A kernel that faults (an illegal memory access, a device-side assert, a
misaligned address, an unspecified launch failure, an illegal instruction, a
hardware stack error, an invalid program counter, a watchdog launch timeout)
or an uncorrectable ECC error leaves the CUDA context in an error state: from
then on each CUDA call in that process returns the same error, until the
process ends (CUDA runtime API, "cudaError": these errors are marked "This
leaves the process in an inconsistent state and any further CUDA work will
return the same error. To continue using CUDA, the process must be terminated
and relaunched."). HIP's equivalents behave alike. PyTorch raises them as
``torch.AcceleratorError`` (2.8 on) or ``RuntimeError`` ("CUDA error: ..."),
CuPy as ``CUDARuntimeError`` ("cudaErrorIllegalAddress: ..."), Numba as
``CudaAPIError`` (``CUDA_ERROR_ILLEGAL_ADDRESS``).

The classifier files them under HARDWARE_NOT_AVAILABLE (rule
``message:cuda-sticky``): the GPU is unusable for the rest of that process.
``sticky_signature`` names which one it was; the plugin uses it to tell the
test that poisoned a worker from the tests that failed after it there.
Pure Python, bounded work: messages are cut before they get here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["STICKY", "STICKY_REGEX", "sticky_signature"]

#: (signature, the texts that report it: CUDA runtime and driver API, HIP, PyTorch/CuPy/Numba)
STICKY: tuple[tuple[str, str], ...] = (
    ("illegal memory access",
     (r"illegal memory access|cudaErrorIllegalAddress|CUDA_ERROR_ILLEGAL_ADDRESS|hipErrorIllegalAddress"
     r"|memory access fault by gpu")),
    ("device-side assert",
     r"device-side assert|cudaErrorAssert\b|CUDA_ERROR_ASSERT\b|hipErrorAssert\b"),
    ("unspecified launch failure",
     r"unspecified launch failure|cudaErrorLaunchFailure|CUDA_ERROR_LAUNCH_FAILED|hipErrorLaunchFailure"),
    ("misaligned address",
     r"misaligned address|cudaErrorMisalignedAddress|CUDA_ERROR_MISALIGNED_ADDRESS"),
    ("uncorrectable ECC error",
     (r"uncorrectable ECC error|cudaErrorECCUncorrectable|CUDA_ERROR_ECC_UNCORRECTABLE"
     r"|hipErrorECCNotCorrectable")),
    ("illegal instruction",
     r"an illegal instruction was encountered|cudaErrorIllegalInstruction|CUDA_ERROR_ILLEGAL_INSTRUCTION"),
    ("hardware stack error",
     r"hardware stack error|cudaErrorHardwareStackError|CUDA_ERROR_HARDWARE_STACK_ERROR"),
    ("invalid program counter",
     r"invalid program counter|cudaErrorInvalidPc\b|CUDA_ERROR_INVALID_PC\b"),
    ("launch timeout",
     (r"the launch timed out and was terminated|cudaErrorLaunchTimeout|CUDA_ERROR_LAUNCH_TIMEOUT"
     r"|hipErrorLaunchTimeOut")),
)

#: All of them, for the classifier's pattern table.
STICKY_REGEX = "|".join(f"(?:{rx})" for _, rx in STICKY)

_EACH = tuple((name, re.compile(rx.lower())) for name, rx in STICKY)
_ANY = re.compile(STICKY_REGEX.lower())
_CHAIN_LINKS = 8


def sticky_signature(record: object) -> str | None:
    """Which sticky GPU error an error record reports ("illegal memory access", ...), or None.

    Looks at the message and type of the record and of its chain (bounded)."""
    if not isinstance(record, Mapping):
        return None
    texts: list[str] = []
    _texts(record, texts, 0)
    text = "\n".join(texts).lower()
    if not _ANY.search(text):
        return None
    for name, rx in _EACH:
        if rx.search(text):
            return name
    return None


def _texts(record: Mapping[object, object], out: list[str], depth: int) -> None:
    for key in ("type", "message"):
        value = record.get(key)
        if isinstance(value, str):
            out.append(value)
    chain = record.get("chain")
    if depth < 2 and isinstance(chain, list):
        for link in chain[:_CHAIN_LINKS]:
            if isinstance(link, Mapping):
                _texts(link, out, depth + 1)
