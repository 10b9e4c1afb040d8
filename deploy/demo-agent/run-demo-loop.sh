#!/bin/sh
# Run one scripted agent session (`auditel demo`) every DEMO_INTERVAL_S seconds, forever.
# Each run is a new process, hence a new audit stream (start record ... end record) in the same
# outbox; records a run could not ship before it exited are shipped by the next one.
set -u
interval="${DEMO_INTERVAL_S:-15}"
trap 'exit 0' TERM INT
while :; do
    # the demo stack exists to ship: --ship, and its outbox is the one AUDITEL_OUTBOX names
    auditel --outbox "${AUDITEL_OUTBOX:?}" demo --ship || echo "run-demo-loop: auditel demo exited with status $?" >&2
    sleep "$interval" &
    wait $!
done
