"""Run a command with a pseudo-terminal as its controlling terminal and standard input, in the
foreground or in a background process group, the way a shell would.

    python -m tests.terminal fg|bg TIMEOUT_S CMD...

Exit status: the command's own; 99 when the kernel stopped it (SIGTTOU / SIGTTIN: what a
background job that touches its terminal gets); 98 when it did not finish within TIMEOUT_S.
Its output goes to this process's stdout/stderr (not to the terminal).
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time


def main(argv: list[str]) -> int:
    mode, timeout_s, cmd = argv[0], float(argv[1]), argv[2:]
    master, slave = pty.openpty()
    leader = os.fork()
    if leader == 0:  # session leader owning the terminal, like a login shell
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        background = mode == "bg"
        # a background job gets its own process group; the terminal's foreground group stays ours
        proc = subprocess.Popen(cmd, stdin=slave, preexec_fn=(lambda: os.setpgid(0, 0)) if background else None)
        while True:
            _, status = os.waitpid(proc.pid, os.WUNTRACED)
            if os.WIFSTOPPED(status):
                print(f"terminal: command stopped by signal {os.WSTOPSIG(status)}", file=sys.stderr, flush=True)
                os.killpg(proc.pid if background else os.getpgrp(), signal.SIGKILL)
                os._exit(99)
            os._exit(os.waitstatus_to_exitcode(status))
    os.close(slave)
    t0 = time.time()
    while True:
        pid, status = os.waitpid(leader, os.WNOHANG)
        if pid:
            return os.waitstatus_to_exitcode(status)
        if time.time() - t0 > timeout_s:
            print(f"terminal: no exit within {timeout_s:.0f}s", file=sys.stderr, flush=True)
            try:
                os.killpg(os.getpgid(leader), signal.SIGKILL)  # the session's foreground group
            except ProcessLookupError:
                pass
            _kill_session(leader)
            os.waitpid(leader, 0)
            return 98
        try:  # keep the terminal's buffer drained
            if select.select([master], [], [], 0.2)[0]:
                os.read(master, 65536)
        except OSError:
            time.sleep(0.2)


def _kill_session(sid: int) -> None:
    """SIGKILL every process of the session this harness created (by pid, nothing else)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    os.kill(int(entry), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
