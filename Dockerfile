# syntax=docker/dockerfile:1
# The edge-operator image: a wheel built in one stage, installed into a virtualenv in a
# second, and copied onto a slim Python base that runs as a non-root user.
#   docker build -t ghcr.io/edge-operator/edge-operator:0.1.0 .
# Pin the base by digest in your build (PYTHON_IMAGE=python:3.12.12-slim-bookworm@sha256:...)
# for reproducible images; the tag below is an exact patch release.
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/edge-operator \
 && /opt/edge-operator/bin/pip install /wheels/*.whl

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="edge-operator" \
      org.opencontainers.image.description="Dedicated edge (ingress) nodes for Kubernetes" \
      org.opencontainers.image.source="https://github.com/edge-operator/edge-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/edge-operator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/edge-operator /opt/edge-operator
# 65532 is the chart's runAsUser; the root filesystem can be read-only (the chart
# mounts an emptyDir on /tmp).
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["edge-operator"]
CMD ["run"]
