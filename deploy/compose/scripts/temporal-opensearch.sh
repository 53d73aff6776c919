#!/bin/sh
# The OpenSearch visibility index of the compose cluster (profile `opensearch`), once: Temporal's
# index template (shipped in temporalio/admin-tools) and the index. Idempotent: the template is
# replaced by itself, an existing index is kept.
set -eu

: "${ES_SERVER:?}" "${ES_VIS_INDEX:?}"
TEMPLATE=/etc/temporal/schema/elasticsearch/visibility/index_template_v7.json

attempt=0
until curl --silent --fail "$ES_SERVER/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 60 ]; then
    echo "temporal-opensearch: $ES_SERVER not healthy after 60 attempts" >&2
    exit 1
  fi
  sleep 2
done

curl --silent --fail -X PUT "$ES_SERVER/_template/temporal_visibility_v1_template" \
  -H "Content-Type: application/json" --data-binary "@$TEMPLATE" >/dev/null
if curl --silent --fail --head "$ES_SERVER/$ES_VIS_INDEX" >/dev/null; then
  echo "temporal-opensearch: index $ES_VIS_INDEX exists"
else
  curl --silent --fail -X PUT "$ES_SERVER/$ES_VIS_INDEX" >/dev/null
  echo "temporal-opensearch: index $ES_VIS_INDEX created"
fi
