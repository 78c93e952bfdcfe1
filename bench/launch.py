"""Tiny launcher: ``python3 -S -I launch.py RESULT CMD...`` runs CMD and writes
"wall utime stime maxrss_kb exitcode" to RESULT. SIGUSR1 makes it SIGKILL CMD.

Why: Linux copies a parent's peak RSS into a forked child, and keeps it across exec, so a
child of the harness (big: buffers, libraries) would report at least the harness's peak as its
own ru_maxrss. Forked from this small process instead, the floor is a few MB. Standard library
builtins only, nothing imported that is not already loaded, to stay small.
"""

import os
import signal
import sys
import time

result, cmd = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
signal.signal(signal.SIGUSR1, lambda *_: os.kill(pid, signal.SIGKILL))
with open(result + ".ready", "w") as f:  # SIGUSR1 is safe to send from now on
    f.write(str(pid))
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(result, "w") as f:
    code = os.waitstatus_to_exitcode(status)
    f.write(f"{wall} {ru.ru_utime} {ru.ru_stime} {ru.ru_maxrss} {code}\n")
