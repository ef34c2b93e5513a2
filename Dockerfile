# syntax=docker/dockerfile:1
#
# The Portcullis image: a release build on the official Rust image, copied onto distroless.
#
#   docker build -t portcullis:0.1.0 .
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

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="portcullis" \
      org.opencontainers.image.description="Identity-aware reverse proxy for Microsoft Entra ID" \
      org.opencontainers.image.version="${VERSION}" \
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
# 9090: admin (/healthz, /readyz, /metrics), unauthenticated: for kubelet probes and
#       Prometheus on the pod network only, never behind a Service or Ingress.
EXPOSE 8443 8080 9090

# No HEALTHCHECK: distroless has no shell or curl to run one, and orchestrators probe the
# admin port themselves (Kubernetes: httpGet /healthz and /readyz on 9090).
ENTRYPOINT ["portcullis"]
CMD ["run", "--config", "/etc/portcullis/portcullis.toml"]
