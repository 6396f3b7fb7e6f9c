# The ddb-bridge image: one image, every command (`stream`, `backfill`, `apply`, `verify`...).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY connectors ./connectors
COPY ddb_bridge ./ddb_bridge
COPY schemas ./schemas
RUN pip install --no-cache-dir . && useradd --system --uid 10001 bridge
USER bridge
ENTRYPOINT ["ddb-bridge"]
CMD ["--help"]
