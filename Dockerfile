# One image for every perf-platform service; the Kubernetes manifests in deploy/ choose the
# command (uvicorn, gunicorn or celery). The code runs from its source tree in /app, as it does
# in a checkout: perf_platform finds sql/migrations relative to itself.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The dependencies alone first, read from pyproject.toml, so a code change reuses this layer.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt \
    && pip install --requirement /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY perf_platform ./perf_platform
COPY services ./services
COPY scripts ./scripts
COPY sql ./sql

# A user without a login or a home; data/ is where request logs and profiles are written.
RUN groupadd --gid 10001 perf \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin perf \
    && mkdir data \
    && chown perf:perf data
USER 10001:10001

EXPOSE 8000
CMD ["uvicorn", "--factory", "services.gateway.app:create_app", "--host", "0.0.0.0", "--port", "8000"]
