"""The seccomp filter every sandboxed command runs under, as the classic BPF bubblewrap loads.

`bwrap --seccomp FD` reads a compiled program (an array of `struct
sock_filter`) and installs it, with `no_new_privs`, just before it starts the
command. This module assembles that program in pure Python for x86-64 and
aarch64; a process of any other architecture (a 32-bit or x32 binary
included) is killed at its first system call, so the filter fails closed.

What it refuses (EPERM), on top of what an unprivileged user namespace
already forbids: mounting, namespaces (unshare, setns, clone with a
namespace flag; clone3 answers ENOSYS so that libc falls back to clone),
ptrace and reading other processes' memory, kernel keyrings, bpf, perf
events, userfaultfd, io_uring, loading kernels and modules, swap, reboot,
accounting and quotas, raw and packet sockets, and device nodes (mknod of a
character or block device; FIFOs and sockets stay allowed).
"""

from __future__ import annotations

import errno
import platform
import socket
import stat
import struct
from dataclasses import dataclass

# Classic BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h).
LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
RET_K = 0x06  # BPF_RET | BPF_K
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000

# Offsets in struct seccomp_data: nr, arch, instruction pointer, then six 64-bit arguments
# (the low 32 bits first: both architectures are little-endian).
NR, ARCH = 0, 4


def arg(index: int) -> int:
    return 16 + 8 * index


NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
X32_SYSCALL_BIT = 0x40000000
SOCK_TYPE_MASK = 0xF
S_IFMT = 0o170000  # stat.S_IFMT is a function in Python

DENIED = [
    "mount",
    "umount2",
    "pivot_root",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "unshare",
    "setns",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "add_key",
    "keyctl",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "syslog",
    "vhangup",
    "open_by_handle_at",
    "lookup_dcookie",
    "iopl",
    "ioperm",
    "uselib",
]


@dataclass(frozen=True)
class Arch:
    audit: int  # AUDIT_ARCH_* as seccomp_data.arch reports it
    numbers: dict[str, int]  # system call numbers; a name missing here does not exist on this architecture


X86_64 = Arch(
    0xC000003E,
    {
        "mount": 165, "umount2": 166, "pivot_root": 155, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "move_mount": 429, "open_tree": 428, "mount_setattr": 442, "unshare": 272, "setns": 308,
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "add_key": 248,
        "keyctl": 250, "request_key": 249, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "kexec_load": 246,
        "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176, "swapon": 167,
        "swapoff": 168, "reboot": 169, "acct": 163, "quotactl": 179, "syslog": 103, "vhangup": 153,
        "open_by_handle_at": 304, "lookup_dcookie": 212, "iopl": 172, "ioperm": 173, "uselib": 134,
        "socket": 41, "clone": 56, "clone3": 435, "mknod": 133, "mknodat": 259,
    },
)  # fmt: skip
AARCH64 = Arch(
    0xC00000B7,
    {
        "mount": 40, "umount2": 39, "pivot_root": 41, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "move_mount": 429, "open_tree": 428, "mount_setattr": 442, "unshare": 97, "setns": 268,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "add_key": 217,
        "keyctl": 219, "request_key": 218, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "kexec_load": 104,
        "kexec_file_load": 294, "init_module": 105, "finit_module": 273, "delete_module": 106, "swapon": 224,
        "swapoff": 225, "reboot": 142, "acct": 89, "quotactl": 60, "syslog": 116, "vhangup": 58,
        "open_by_handle_at": 265, "lookup_dcookie": 18, "socket": 198, "clone": 220, "clone3": 435,
        "mknodat": 33,
    },
)  # fmt: skip
ARCHES = {"x86_64": X86_64, "amd64": X86_64, "aarch64": AARCH64, "arm64": AARCH64}

Instruction = tuple[int, str | int, str | int, int]  # (code, jump if true, jump if false, k); a str is a label


class Program:
    """A tiny assembler: instructions whose jump targets are labels, resolved at the end."""

    def __init__(self) -> None:
        self._code: list[Instruction | str] = []

    def label(self, name: str) -> None:
        self._code.append(name)

    def load(self, offset: int) -> None:
        self._code.append((LD_ABS, 0, 0, offset))

    def mask(self, bits: int) -> None:
        self._code.append((AND_K, 0, 0, bits))

    def jump(self, code: int, k: int, if_true: str | int = 0, if_false: str | int = 0) -> None:
        self._code.append((code, if_true, if_false, k))

    def ret(self, value: int) -> None:
        self._code.append((RET_K, 0, 0, value))

    def assemble(self) -> bytes:
        """The program as `struct sock_filter[]`; a jump further than 255 instructions is an error."""
        where: dict[str, int] = {}
        instructions: list[Instruction] = []
        for item in self._code:
            if isinstance(item, str):
                where[item] = len(instructions)
            else:
                instructions.append(item)
        out = bytearray()
        for index, (code, if_true, if_false, k) in enumerate(instructions):
            jumps = [where[j] - index - 1 if isinstance(j, str) else j for j in (if_true, if_false)]
            if not all(0 <= j <= 255 for j in jumps):
                raise ValueError(f"a jump of the seccomp program is out of range: {jumps}")
            out += struct.pack("=HBBI", code, jumps[0], jumps[1], k)
        return bytes(out)


def filter_for(arch: Arch) -> bytes:
    """The compiled filter for processes of `arch`; any other architecture is killed."""
    numbers = arch.numbers
    p = Program()
    p.load(ARCH)
    p.jump(JEQ_K, arch.audit, 0, "kill")
    p.load(NR)
    if arch is X86_64:
        p.jump(JGE_K, X32_SYSCALL_BIT, "kill")
    for name in DENIED:
        if name in numbers:
            p.jump(JEQ_K, numbers[name], "deny")
    p.jump(JEQ_K, numbers["clone3"], "enosys")
    p.jump(JEQ_K, numbers["socket"], "socket")
    p.jump(JEQ_K, numbers["clone"], "clone")
    if "mknod" in numbers:
        p.jump(JEQ_K, numbers["mknod"], "mknod")
    p.jump(JEQ_K, numbers["mknodat"], "mknodat")
    p.ret(RET_ALLOW)

    p.label("socket")  # socket(family, type, protocol): no AF_PACKET, no SOCK_RAW of any family
    p.load(arg(0))
    p.jump(JEQ_K, socket.AF_PACKET, "deny")
    p.load(arg(1))
    p.mask(SOCK_TYPE_MASK)
    p.jump(JEQ_K, socket.SOCK_RAW, "deny")
    p.ret(RET_ALLOW)

    p.label("clone")  # clone(flags, ...): no new namespace
    p.load(arg(0))
    p.jump(JSET_K, NAMESPACE_FLAGS, "deny")
    p.ret(RET_ALLOW)

    for label, mode_arg in (("mknod", 1), ("mknodat", 2)):
        p.label(label)  # no character or block device
        p.load(arg(mode_arg))
        p.mask(S_IFMT)
        p.jump(JEQ_K, stat.S_IFCHR, "deny")
        p.jump(JEQ_K, stat.S_IFBLK, "deny")
        p.ret(RET_ALLOW)

    p.label("deny")
    p.ret(RET_ERRNO | errno.EPERM)
    p.label("enosys")
    p.ret(RET_ERRNO | errno.ENOSYS)
    p.label("kill")
    p.ret(RET_KILL_PROCESS)
    return p.assemble()


def host_filter(machine: str | None = None) -> bytes | None:
    """The filter for this machine's architecture, or None where this module has no table for it."""
    arch = ARCHES.get((machine or platform.machine()).lower())
    return filter_for(arch) if arch is not None else None
