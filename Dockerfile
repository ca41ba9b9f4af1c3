# polyaxon-reconciler: the daemon image. Build: docker build -t polyaxon-reconciler .
FROM python:3.11-slim

# git for fetching repos; tini to forward SIGTERM so the daemon shuts down gracefully.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 reconciler
WORKDIR /app
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
RUN pip install --no-cache-dir . && rm -rf /root/.cache

USER 10001
ENV XDG_DATA_HOME=/data
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "reconciler"]
CMD ["run", "--config", "/etc/reconciler/reconciler.yaml"]
