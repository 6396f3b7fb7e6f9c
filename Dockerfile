# The ddb-bridge image: one image, every command (`stream`, `backfill`, `apply`, `audit`...).
#     docker build -t ddb-bridge .                    every command but `kcl`
#     docker build --target kcl -t ddb-bridge:kcl .   adds Java 17 and the KCL for `ddb-bridge kcl`
# Reproducible: dependencies install at the versions of requirements.lock (pip constraints;
# regenerate with `python3 tools/lock_requirements.py`), on the Python the tests run.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.lock pyproject.toml setup.py README.md LICENSE ./
COPY bridge ./bridge
COPY connectors ./connectors
COPY ddb_bridge ./ddb_bridge
COPY schemas ./schemas
# /var/lib/ddb-bridge/audit: `audit`'s archive; a volume mounted there takes this owner.
# gcc builds the compiled per-item core (bridge/codec/_core.c; the image's Python has its
# headers) and leaves in the same layer; the build stops if the core is not in use.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir -c requirements.lock . \
    && apt-get purge -y --auto-remove gcc libc6-dev && rm -rf /var/lib/apt/lists/* \
    && cd / && python -c "from bridge.codec.compiled import CORE, WHY_NOT; assert CORE, WHY_NOT" \
    && useradd --system --uid 10001 bridge \
    && mkdir -p /var/lib/ddb-bridge/audit && chown -R bridge /var/lib/ddb-bridge
USER bridge
# The daemon's own /livez, found from the container's command (ddb_bridge/healthcheck.py):
# unhealthy only when its main loop is wedged, not during a broker outage (that is /readyz);
# a command that serves none (verify, a one-shot) passes.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "ddb_bridge.healthcheck"]
ENTRYPOINT ["ddb-bridge"]
CMD ["--help"]

# `ddb-bridge kcl` runs the KCL's Java MultiLangDaemon; amazon-kclpy fetches its jars at install.
FROM base AS kcl
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless gcc libc6-dev \
    && pip install --no-cache-dir -c requirements.lock '.[kcl]' \
    && apt-get purge -y --auto-remove gcc libc6-dev && rm -rf /var/lib/apt/lists/* \
    && cd / && python -c "from bridge.codec.compiled import CORE, WHY_NOT; assert CORE, WHY_NOT"
USER bridge

# The default target (last stage): the image without Java.
FROM base AS default
