# syntax=docker/dockerfile:1
#
# The Portcullis image: a release build on the official Rust image, copied onto distroless.
#
#   docker build -t portcullis:0.1.0 .      (OCI labels for a release: see the LABEL below)
#
# Crate versions are pinned by Cargo.lock; the two base images below are pinned by tag only,
# and tags move when their maintainers rebuild them. For a build that reproduces bit for bit,
# pin both by digest (`FROM rust:1.95-bookworm@sha256:...`), and update the digests on purpose.
#
# .ci/check-deploy lints this file and runs its cargo commands outside Docker on a copy of
# exactly what the COPY lines below take from the build context (.dockerignore applied).

FROM rust:1.95-bookworm AS build
WORKDIR /build
# The manifest and lock file alone are enough to download every dependency: this layer is
# reused as long as they do not change, so editing src/ does not download crates again.
# The workspace's second member, the stand-in Entra ID of the tests and the demo, comes along
# because cargo reads every member's manifest; the build below does not compile it.
COPY Cargo.toml Cargo.lock ./
COPY crates/ crates/
RUN cargo fetch --locked
# Only the sources of the binary. bench/ and tests/ are declared in Cargo.toml as an example
# and a test target, which a `--bin` build neither builds nor looks for.
COPY src/ src/
# --locked: the versions in Cargo.lock or an error, never a fresh resolution.
# --no-default-features: without the `demo` feature, so no stand-in code in the binary
# (`portcullis demo` then says how to run the demo from a clone).
RUN cargo build --release --locked --no-default-features -p portcullis --bin portcullis

# glibc (the build image is Debian 12 too, so the binary finds the glibc it was linked
# against), libgcc and the CA certificates that discovery and Graph calls are verified with;
# no shell, no package manager. The binary needs nothing else: TLS is rustls with ring and the
# allocator is mimalloc, both compiled in (no OpenSSL).
FROM gcr.io/distroless/cc-debian12:nonroot

# Set by the release build, from the repository it builds:
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg SOURCE="$(git remote get-url origin)" -t portcullis:0.1.0 .
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="portcullis" \
      org.opencontainers.image.description="Identity-aware reverse proxy for Microsoft Entra ID" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=build /build/target/release/portcullis /usr/local/bin/portcullis
# Defaults (listeners on all interfaces, JSON logs, TLS files in tls/, no routes), meant to be
# replaced by mounting a directory over /etc/portcullis: see config/container/portcullis.toml.
COPY config/container/ /etc/portcullis/

# Numeric, not "nonroot": Kubernetes' runAsNonRoot can only verify a numeric user.
USER 65532:65532

# 8443: HTTPS, the proxy itself.
# 8080: plain HTTP, answering 308 to https:// for hosts that have routes.
# The admin port, 9090 (/healthz, /readyz, /metrics), is deliberately not EXPOSEd: it is
# unauthenticated, and `docker run -P` publishes every exposed port on every host address.
# Kubelet probes and Prometheus reach it on the pod network without EXPOSE; with Docker,
# publish it on loopback yourself (-p 127.0.0.1:9090:9090, as deploy/docker-compose.yml does).
EXPOSE 8443 8080

# The binary probes its own admin listener (there is no shell or curl in the image):
# `portcullis health` exits 0 when GET http://127.0.0.1:9090/healthz answers 2xx. Kubernetes
# ignores HEALTHCHECK and uses the Deployment's probes.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["portcullis", "health", "--address", "127.0.0.1:9090", "--path", "/healthz"]
ENTRYPOINT ["portcullis"]
CMD ["run", "--config", "/etc/portcullis/portcullis.toml"]
