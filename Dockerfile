# kvnode node image. On a machine with a registry:   docker compose up -d
# Without one, build a local base first:            scripts/docker-base-image.sh
# and point the build at it (scripts/docker-build.sh does both, with wheels built on the host).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Wheels built on the host (scripts/docker-build.sh) make the build work offline;
# with an empty docker/wheels, pip installs from the package index instead.
COPY docker/wheels/ /tmp/wheels/
COPY pyproject.toml README.md scripts/requirements.lock /tmp/src/
COPY docs/LICENSE /tmp/src/docs/LICENSE
COPY kvnode /tmp/src/kvnode
COPY cluster /tmp/src/cluster
RUN python3 -m venv /opt/kvnode \
 && if ls /tmp/wheels/*.whl >/dev/null 2>&1; then \
      /opt/kvnode/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels "kvnode[server]"; \
    else \
      /opt/kvnode/bin/pip install --no-cache-dir --constraint /tmp/src/requirements.lock "/tmp/src[server]"; \
    fi \
 && rm -rf /tmp/wheels /tmp/src \
 && (getent group kvnode || groupadd --system kvnode) \
 && (getent passwd kvnode || useradd --system --gid kvnode --home-dir /var/lib/kvnode kvnode) \
 && mkdir -p /var/lib/kvnode /etc/kvnode \
 && chown kvnode:kvnode /var/lib/kvnode

ENV PATH=/opt/kvnode/bin:$PATH PYTHONUNBUFFERED=1
USER kvnode
VOLUME /var/lib/kvnode
EXPOSE 8001 4321
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=2s --timeout=2s --start-period=5s --retries=3 \
  CMD python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8001/ready', timeout=2)" || exit 1
ENTRYPOINT ["kvnode", "serve"]
CMD ["--config", "/etc/kvnode/node.toml"]
