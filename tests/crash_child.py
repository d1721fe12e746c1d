"""Run one stocklink job in a process of its own, so a test can kill it with SIGKILL mid-call.

``python -m tests.crash_child '<json>'``: ``config`` (the test app's configuration), ``job``
(``push`` or ``drain``) and ``args``. It prints ``running`` just before the job starts.
"""
from __future__ import annotations

import json
import sys

from stocklink import create_app, jobs


def main() -> None:
    spec = json.loads(sys.argv[1])
    app = create_app(spec["config"])
    jobs.set_app(app)
    from stocklink.jobs.inbox import process_inbox
    from stocklink.jobs.push import push_channel

    print("running", flush=True)
    if spec["job"] == "push":
        print(push_channel(*spec["args"]), flush=True)
    else:
        print(process_inbox(), flush=True)


if __name__ == "__main__":
    main()
