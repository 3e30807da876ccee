#!/bin/sh
# Count the bytes of every GitHub event and report its type.
set -eu
size=$(wc -c | tr -d ' ')
echo "got $GHAPPLETS_EVENT_TYPE ($size bytes), delivery $GHAPPLETS_DELIVERY_ID" >&2
printf '{"type": "%s", "bytes": %s}\n' "$GHAPPLETS_EVENT_TYPE" "$size"
