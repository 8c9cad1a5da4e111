# The one kruisebus image: every service (`kruisebus watcher|planner|executor|webhook|sim|...`) runs from it.
#
# Base: python:3.11-slim pinned by its image-index digest (multi-arch), the same Python minor the project
# targets (pyproject.toml). Refresh it with any registry client, then update both ARGs' digest:
#   docker buildx imagetools inspect python:3.11-slim --format '{{json .Manifest.Digest}}'
#   # or: crane digest python:3.11-slim  /  skopeo inspect docker://python:3.11-slim | jq -r .Digest
# (docs/install.md, "Building the image").
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/kruisebus
COPY pyproject.toml requirements.lock ./
COPY schemas ./schemas
COPY services ./services
COPY sim ./sim
# Exactly the locked versions (the constraints file pins every transitive dependency).
RUN /opt/kruisebus/bin/pip install -c requirements.lock . \
 && /opt/kruisebus/bin/pip check
# Data files the code finds next to its packages: the CRDs the sim serves, the demo's CloneSet.
COPY deploy/helm/kruisebus/crds /opt/kruisebus/lib/python3.11/site-packages/deploy/helm/kruisebus/crds
COPY examples /opt/kruisebus/lib/python3.11/site-packages/examples

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="kruisebus" \
      org.opencontainers.image.description="OpenKruise-compatible rollouts as services on NATS JetStream" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/kruisebus/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/kruisebus /opt/kruisebus
# Numeric, non-root (the chart's runAsNonRoot needs a numeric user to verify); no home, no shell login.
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["/opt/kruisebus/bin/kruisebus"]
CMD ["--help"]
