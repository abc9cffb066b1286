# One image for every service; the compose file picks the `hb` subcommand. It installs the
# services with the `tracing` extra (off unless HB_TRACING is set) and without the `embedded`
# one: production runs its own Redis and Postgres.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY ingest ./ingest
COPY api ./api
COPY flusher ./flusher
COPY hb ./hb
RUN pip install '.[tracing]' && useradd --system --uid 10001 --no-create-home hb

USER hb
EXPOSE 8080 8081
CMD ["hb", "--help"]
