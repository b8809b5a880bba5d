# One image for the API and the GPU worker: docker-compose.yml picks the process with `command`.
# A plain Python base is enough: the CUDA runtime (cuBLAS, cuDNN, NCCL...) comes with the torch wheel as its
# nvidia-* pip dependencies, and the NVIDIA container toolkit mounts the host's driver into the GPU worker.
FROM python:3.11.14-slim-trixie

# The user the processes run as. Its ids are build args so that it can match the owner of the host's ./logs,
# which the GPU worker writes through a bind mount.
ARG APP_UID=1000
ARG APP_GID=1000

# HF_HUB_OFFLINE: the model comes from MODEL_DIR, never the Hub. No PYTHONPATH: the project is installed (below).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    MODEL_DIR=/app/model \
    LOG_DIR=/app/logs

RUN groupadd --gid "${APP_GID}" app \
    && useradd --uid "${APP_UID}" --gid app --create-home --no-log-init --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies before code: this (large) layer is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# The code stays root-owned and read-only to the app user; only the log folder is its to write.
COPY pyproject.toml celeryconfig.py ./
COPY core/ core/
COPY broker/ broker/
COPY api/ api/
COPY worker/ worker/
COPY ops/ ops/
COPY launcher/ launcher/
COPY scripts/ scripts/
# The project itself, with its console scripts (llmq-gpu-worker, llmq-healthcheck...), whatever the working
# directory; --no-deps: requirements.txt pinned every dependency above. The build's leftovers go.
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info \
    && mkdir -p /app/model /app/logs && chown app:app /app/logs

USER ${APP_UID}:${APP_GID}

EXPOSE 8000

# The API, as `make run` starts it (launcher/processes.py), bound to every interface of the container; worker
# heartbeat files on /dev/shm, since a container's /tmp is on the (slow, possibly blocking) overlay disk.
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--worker-class", "gevent", "--workers", "2", "--worker-connections", "1000", "--graceful-timeout", "10", "--worker-tmp-dir", "/dev/shm", "api.wsgi:app"]
