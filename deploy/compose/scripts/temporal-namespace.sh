#!/bin/sh
# Registers the Temporal namespace treatyflow runs in, once (idempotent). Retention and search
# attributes are then set by `treatyflow setup` (TREATYFLOW_RETENTION_DAYS); 1440 h = its 60 days.
# The temporal CLI reads the address and its mTLS certificate from TEMPORAL_ADDRESS and TEMPORAL_TLS_*.
set -eu

: "${TEMPORAL_ADDRESS:?}" "${TEMPORAL_NAMESPACE:?}"
RETENTION="${TEMPORAL_NAMESPACE_RETENTION:-1440h}"

attempt=0
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 60 ]; then
    echo "temporal-namespace: $TEMPORAL_ADDRESS not healthy after 60 attempts" >&2
    exit 1
  fi
  sleep 2
done

if temporal operator namespace describe --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
  echo "temporal-namespace: $TEMPORAL_NAMESPACE exists"
else
  temporal operator namespace create --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" \
    --retention "$RETENTION"
  echo "temporal-namespace: $TEMPORAL_NAMESPACE created"
fi
