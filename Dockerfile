# Concord hub image. Used by docker-compose.yml, which supplies PostgreSQL and NATS, so the
# embedded servers shipped as Python dependencies are not started in the container.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY projections ./projections
COPY adapters ./adapters
COPY api ./api
# `pip install .` builds the wheel and installs it; the ownership policy ships inside it
# (adapters/ownership.yaml), and the build fails here if the installed hub cannot load it.
RUN pip install . \
    && cd / && python -c "from adapters.bootstrap import load_policy; load_policy(None)" \
    && concord --help > /dev/null \
    && useradd --system --home-dir /app concord
USER concord

EXPOSE 8000
# The entry point is the `concord` CLI; docker-compose.yml states the same command explicitly.
CMD ["concord", "serve", "--host", "0.0.0.0"]
