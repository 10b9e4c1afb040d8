"""Emit audit records in a tight loop, printing each record id once emit() has returned.

Usage: emit_loop.py OUTBOX [COUNT] [THREADS]. Used by the crash and concurrency tests.
"""

import json
import sys
import threading

import auditel

outbox = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 10**9
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
auditel.configure(outbox=outbox)
out_lock = threading.Lock()


def work(tid: int) -> None:
    for i in range(count):
        rid = auditel.emit("auditel.action", attributes={"audit.action": "loop", "thread": tid, "i": i}, body="x" * 64)
        if rid is not None:
            with out_lock:
                sys.stdout.write(rid + "\n")
                sys.stdout.flush()


workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
status = auditel.status()
sys.stderr.write("STATUS " + json.dumps({"errors": status["errors"], "rejected": status["rejected"]}) + "\n")
