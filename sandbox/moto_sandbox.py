"""Runs moto's server on loopback for the Breakwater sandbox.

Usage: moto_sandbox.py PORT [--watch-parent]

With --watch-parent the server exits as soon as the process that started it is gone, so that a
test binary or a demo that dies never leaves a server behind.
"""
import os
import sys
import threading
import time


def watch(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.25)


def main() -> None:
    port = sys.argv[1]
    if "--watch-parent" in sys.argv[2:]:
        threading.Thread(target=watch, args=(os.getppid(),), daemon=True).start()
    import moto_arc
    import moto_iam
    import moto_patches
    from moto.server import main as moto_main

    moto_patches.apply()
    # IAM from template.yaml for every function binary (see moto_iam.py).
    moto_iam.apply()
    # The Route 53 ARC cluster data plane, which moto lacks (see moto_arc.py).
    moto_arc.apply()

    moto_main(["-H", "127.0.0.1", "-p", port])


if __name__ == "__main__":
    main()
