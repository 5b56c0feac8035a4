"""The shim every emulated instance runs under, so that its end outlives the control plane.

    python -I -S _shim.py EXIT_FILE -- ARGV...

The world starts it in a session of its own, with stdin the read end of a pipe, and
writes one byte to that pipe only once the shim's pid is durably recorded. The shim
waits for that byte: if the pipe closes without it (the control plane died between
the spawn and the record), the command never runs, so no instance runs unrecorded.
Then it runs ``ARGV`` (stdin ``/dev/null``, same process group, same environment),
waits for it, writes its exit code to ``EXIT_FILE`` (atomically: a temporary file,
then a rename) and exits with the same code (``128 + N`` when killed by signal N).
A later process that is not its parent (a restarted control plane) reads the file.

``EXIT_FILE`` holds the return code on the first line (negative: killed by that
signal), then an optional detail (``cannot start: ...`` when ``ARGV`` cannot be
executed, with code 127). Killing the process group (SIGKILL) kills shim and command
at once and leaves no exit file.

Standard library only (``os``, ``signal``, ``sys``), run as a script (``-I -S``, not
``-m``): it imports nothing of cloudhedge, so it starts in ~15 ms and stays small.
"""

from __future__ import annotations

import os
import signal
import sys

NO_GO = 125  # the pipe closed without the go byte: the command was never run
CANNOT_START = 127


def write_exit(path: str, code: int, detail: str = "") -> None:
    """Write ``code`` (and ``detail``) to ``path`` atomically."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{code}\n{detail}")
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: _shim.py EXIT_FILE -- ARGV...", file=sys.stderr)
        return 2
    exit_file, command = argv[0], argv[2:]
    if os.read(0, 1) != b"1":
        return NO_GO
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    try:  # what Python ignores, the command gets back (as subprocess's restore_signals)
        pid = os.posix_spawnp(command[0], command, os.environ,
                              setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
    except OSError as exc:
        write_exit(exit_file, CANNOT_START, f"cannot start: {exc}")
        return CANNOT_START
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except KeyboardInterrupt:  # SIGINT to the group: the command decides, we wait
            continue
    code = os.waitstatus_to_exitcode(status)
    write_exit(exit_file, code)
    return code if code >= 0 else 128 - code  # the file has the signal, as a negative code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
